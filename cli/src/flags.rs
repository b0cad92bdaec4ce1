//! The library names its options as the builder does (`file_prefix = "blk1"`); the CLI's
//! errors and messages name the flags that set them (`--prefix blk1`).

/// The library's option names and the flags that set them.
const FLAGS: [(&str, &str); 6] = [
    ("file_prefix", "--prefix"),
    ("file_padding", "--padding"),
    ("genesis_bytes", "--genesis"),
    ("max_file_size", "--max-file-size"),
    // The CLI sets the buffer size to the file size.
    ("max_buffer_size", "--max-file-size"),
    ("path", "--dir"),
];

/// The flag that sets the library's `option`, or the option itself when no flag does.
fn flag(option: &str) -> &str {
    FLAGS
        .iter()
        .find(|(o, _)| *o == option)
        .map_or(option, |(_, f)| f)
}

/// One error line: the chain of `e` joined with ": ", as `{e:#}` prints it, with the
/// library's option names turned into the CLI's flags.
pub(crate) fn error_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|cause| match cause.downcast_ref::<aiodiskdb::Error>() {
            Some(aiodiskdb::Error::InvalidConfiguration {
                option,
                value,
                reason,
            }) => config_line(option, value, reason),
            _ => in_flags(&cause.to_string()),
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// An `InvalidConfiguration` error on one line, naming the CLI's flags. The tiering ones
/// (a directory with files on object storage opened without `--store`, or with another key
/// prefix) end with the `--store` to give, which the library names.
fn config_line(option: &str, value: &str, reason: &str) -> String {
    match option {
        "store" => format!("--store {value}: {reason}"),
        "tiering" if value == "none" => format!("no --store given: {}", store_hint(reason)),
        "tiering store" => format!("--store {}: {}", unquote(value), store_hint(reason)),
        "tiering prefix" => format!(
            "--store with key prefix {}: {}",
            unquote(value),
            store_hint(reason)
        ),
        _ => format!("{} {}: {}", flag(option), unquote(value), in_flags(reason)),
    }
}

/// The library's `WHEREABOUTS: open with ...; with the CLI, give --store URL` as
/// `WHEREABOUTS: give --store URL`.
fn store_hint(reason: &str) -> String {
    match (
        reason.split_once(": open with"),
        reason.rsplit_once("; with the CLI, "),
    ) {
        (Some((whereabouts, _)), Some((_, cli))) => format!("{whereabouts}: {cli}"),
        _ => in_flags(reason),
    }
}

/// `text` with each option name of the library that stands as a word turned into its
/// flag, `option = value` into `--flag value`, and a quoted value after it unquoted. A
/// name inside a path (`/srv/file_prefix/`) stays as it is.
pub(crate) fn in_flags(text: &str) -> String {
    // The CLI has no such option: only `add` creates a directory.
    let mut out = text.replace(" (create_if_missing is false)", "");
    // `path` is also an English word: it is named only as the option of an error.
    for (option, flag) in FLAGS.iter().filter(|(o, _)| *o != "path") {
        out = replace_word(&out, option, flag);
    }
    out
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Replaces each `word` of `text` that is not part of a longer word or a path.
fn replace_word(text: &str, word: &str, flag: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let (before, after) = (&rest[..at], &rest[at + word.len()..]);
        let starts = before
            .bytes()
            .next_back()
            .is_none_or(|b| !is_word_byte(b) && b != b'/' && b != b'.' && b != b'-');
        let ends = after
            .bytes()
            .next()
            .is_none_or(|b| !is_word_byte(b) && b != b'/');
        out.push_str(before);
        if starts && ends {
            out.push_str(flag);
            // `option = value` reads `--flag value`.
            let after = after.strip_prefix(" = ").map_or(after, |v| {
                out.push(' ');
                v
            });
            rest = push_unquoted(&mut out, after);
        } else {
            out.push_str(word);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// If `text` starts with a value the library quoted (`"blk1"`, after a flag), pushes it
/// unquoted when that is unambiguous; returns the text after what was pushed.
fn push_unquoted<'a>(out: &mut String, text: &'a str) -> &'a str {
    let (lead, value) = match text.strip_prefix(' ') {
        Some(value) => (" ", value),
        None => ("", text),
    };
    let Some(inner) = value.strip_prefix('"') else {
        return text;
    };
    match inner.find('"') {
        Some(end) if !inner[..end].contains(['\\', ' ']) && !inner[..end].is_empty() => {
            out.push_str(lead);
            out.push_str(&inner[..end]);
            &inner[end + 1..]
        }
        _ => text,
    }
}

/// A value the library quoted (`"blk1"`), unquoted when that is unambiguous.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|v| !v.is_empty() && !v.contains(['"', '\\', ' ']))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(option: &'static str, value: &str, reason: &str) -> anyhow::Error {
        aiodiskdb::Error::InvalidConfiguration {
            option,
            value: value.to_owned(),
            reason: reason.to_owned(),
        }
        .into()
    }

    #[test]
    fn configuration_errors_name_the_flags() {
        assert_eq!(
            error_line(&config(
                "file_prefix",
                "\"blk1\"",
                "must be a non-empty string of letters"
            )),
            "--prefix blk1: must be a non-empty string of letters"
        );
        assert_eq!(
            error_line(&config(
                "file_padding",
                "6",
                "the directory was written with file_padding = 5 (recorded in \
                 /srv/file_padding/.aiodiskdb.data.state); open it with the same value"
            )),
            "--padding 6: the directory was written with --padding 5 (recorded in \
             /srv/file_padding/.aiodiskdb.data.state); open it with the same value"
        );
        assert_eq!(
            error_line(&config(
                "file_prefix",
                "\"data\"",
                "the directory was written with file_prefix = \"blk\" (recorded in x)"
            )),
            "--prefix data: the directory was written with --prefix blk (recorded in x)"
        );
        assert_eq!(
            error_line(&config(
                "max_buffer_size",
                "7",
                "must not exceed max_file_size"
            )),
            "--max-file-size 7: must not exceed --max-file-size"
        );
        assert_eq!(
            error_line(&config("file_prefix", "\"a b\"", "letters")),
            "--prefix \"a b\": letters",
            "a value that needs its quotes keeps them"
        );
    }

    #[test]
    fn tiering_errors_name_the_store_to_give() {
        let whereabouts = "index(es) 0 (data00000.dat) are on object storage AmazonS3(b) \
                           under prefix \"p\"";
        assert_eq!(
            error_line(&config(
                "tiering",
                "none",
                &format!(
                    "{whereabouts}: open with Builder::tiering(Tiering::new(store, \"p\")); \
                     with the CLI, give --store s3://b/p"
                )
            )),
            format!("no --store given: {whereabouts}: give --store s3://b/p")
        );
        assert_eq!(
            error_line(&config(
                "tiering prefix",
                "\"q\"",
                &format!(
                    "{whereabouts}: open with that prefix; with the CLI, give --store s3://b/p"
                )
            )),
            format!("--store with key prefix q: {whereabouts}: give --store s3://b/p")
        );
        assert_eq!(
            error_line(&config(
                "tiering store",
                "s3://c/p",
                &format!(
                    "{whereabouts}, not in bucket \"c\": open with that store; with the CLI, \
                     give --store s3://b/p"
                )
            )),
            format!("--store s3://c/p: {whereabouts}, not in bucket \"c\": give --store s3://b/p")
        );
        assert_eq!(
            error_line(&config(
                "store",
                "s3:/x",
                "the store must be s3://bucket[/prefix]"
            )),
            "--store s3:/x: the store must be s3://bucket[/prefix]"
        );
    }

    #[test]
    fn messages_name_the_flags() {
        assert_eq!(
            in_flags("the directory was written with file_padding 5 (not 6); open it"),
            "the directory was written with --padding 5 (not 6); open it"
        );
        assert_eq!(
            in_flags("written with file_prefix \"blk\" (not \"data\")"),
            "written with --prefix blk (not \"data\")"
        );
        assert_eq!(
            in_flags(
                "open directory /a/path: directory does not exist (create_if_missing is false)"
            ),
            "open directory /a/path: directory does not exist"
        );
        for unchanged in [
            "no such path",
            "/srv/max_file_size/x",
            "my_file_prefix",
            "file_prefixes",
            "data.file_padding",
        ] {
            assert_eq!(in_flags(unchanged), unchanged);
        }
    }

    #[test]
    fn other_errors_keep_their_chain() {
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&e), "outer: inner");
    }
}
