import json,statistics as st
for v in ['before','after']:
    rs={1:[],32:[]}; rates={}
    for line in open(f'{v}.jsonl'):
        for run in json.loads(line)['runs']:
            key=(run['readers'],run['verify_reads'])
            rates.setdefault(key,[]).append(run['reads_per_s'])
            if run.get('vs_unverified'): rs[run['readers']].append(run['vs_unverified'])
    for k in rs: print(v,k,'readers: median ratio %.3f mean %.3f'%(st.median(rs[k]),st.mean(rs[k])), ' '.join('%.2f'%x for x in rs[k]))
    for k,x in sorted(rates.items()): print('   ',k,'median %.0f reads/s'%st.median(x))
