#!/usr/bin/env python3
"""Instructions per request by function, two callgrind files compared (docs/performance.md).

Run bench/instructions.js with KEEP=1 PERF_MAP=1 so that the callgrind files stay in the temporary
directory and V8 writes its perf map (/tmp/perf-<pid>.map) beside them; then

    python3 bench/callgrind-functions.py /tmp/fnm-callgrind-<a>-<pid>.out.1-01 \
        /tmp/fnm-callgrind-<b>-<pid>.out.1-01 <requests>

prints the functions whose self cost grew or shrank most from a to b, per request. JIT code,
which callgrind knows only by address, is named through the perf map of the process that ran it
(the `pid:` line of each file). Self cost only: a function's callees count for themselves.
"""
import bisect
import collections
import re
import sys


def load_perf_map(pid):
    """V8's perf map of process `pid`: sorted (start, size, name) of every piece of JIT code."""
    rows = []
    with open(f'/tmp/perf-{pid}.map') as f:
        for line in f:
            start, size, name = line.rstrip('\n').split(' ', 2)
            rows.append((int(start, 16), int(size, 16), name))
    rows.sort()
    return rows


def jit_name(rows, starts, addr):
    """The perf map's name of the code at `addr`, or None."""
    i = bisect.bisect_right(starts, addr) - 1
    if i >= 0 and rows[i][0] <= addr < rows[i][0] + rows[i][1]:
        return rows[i][2]
    return None


def self_cost(path):
    """Instructions spent in each function itself (callees not included), by function name."""
    with open(path) as f:
        pid = re.search(r'^pid: (\d+)', f.read(4000), re.M).group(1)
    rows = load_perf_map(pid)
    starts = [r[0] for r in rows]
    names = {}  # callgrind's name compression: "fn=(12) name" once, then "fn=(12)"
    cost = collections.Counter()
    current = None
    call_line_next = False  # the cost line after "calls=" is the callee's inclusive cost
    with open(path) as f:
        for line in f:
            if line.startswith(('fn=', 'cfn=')):
                m = re.match(r'c?fn=\((\d+)\)(?: (.*))?', line.strip())
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith('fn='):
                    current = names[m.group(1)]
                    call_line_next = False
                continue
            if line.startswith(('cfi=', 'cfl=', 'calls=')):
                call_line_next = call_line_next or line.startswith('calls=')
                continue
            if current is not None and line[:1] and (line[0].isdigit() or line[0] in '+-*'):
                parts = line.split()
                if len(parts) < 2:
                    continue
                if call_line_next:
                    call_line_next = False
                    continue
                cost[current] += int(parts[1])
    named = collections.Counter()
    for name, c in cost.items():
        m = re.match(r'0x([0-9a-f]+)', name)
        if m:
            name = jit_name(rows, starts, int(m.group(1), 16)) or 'JIT code not in the perf map'
        named[name] += c
    return named


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    a, b, requests = self_cost(sys.argv[1]), self_cost(sys.argv[2]), int(sys.argv[3])
    diff = sorted(((b[k] - a[k]) / requests, k) for k in set(a) | set(b))
    print(f'total per request: a {sum(a.values()) / requests:.0f}, b {sum(b.values()) / requests:.0f}')
    print('grew most (b - a, instructions per request):')
    for d, k in reversed(diff[-30:]):
        print(f'{d:9.1f}  {k[:140]}')
    print('shrank most:')
    for d, k in diff[:10]:
        print(f'{d:9.1f}  {k[:140]}')


main()
