import asyncio, sys, time, subprocess, os
import psutil
from bench.common import embedded_stack
from bench.scale import _open_requests, _until_codes_sent
from bench.throughput import erasures
from devstack.demo.subjects import demo_subjects

def cpu_by_proc():
    out = {}
    me = psutil.Process()
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times(); name = " ".join(p.cmdline()[1:4])[:60] or p.name()
            out[p.pid] = (name, t.user + t.system)
        except psutil.Error: pass
    return out

async def main(mode, n):
    async with embedded_stack(demo=(mode=="erase")) as b:
        if mode == "erase":
            await erasures(b, ["ada@example.com"])
        else:
            await _open_requests(b, 5)
        pids = {"api": b.pid("api"), "worker": b.pid("worker")}
        spies = [subprocess.Popen([".venv/bin/py-spy", "record", "-r", "50", "-f", "raw", "-o", f"/tmp/prof/{mode}-{role}.txt", "-p", str(pid), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for role, pid in pids.items()]
        c0 = cpu_by_proc(); t = time.perf_counter()
        if mode == "erase":
            emails = [s.email for s in demo_subjects()][3:3+n]
            el = await erasures(b, emails)
        else:
            el = await _open_requests(b, n); await _until_codes_sent(b, n+5)
        wall = time.perf_counter()-t
        c1 = cpu_by_proc()
        for s in spies: s.send_signal(2)
        for s in spies: s.wait()
        print(f"{mode} {n}: {el:.1f}s  wall {wall:.1f}")
        for pid, (name, c) in sorted(c1.items(), key=lambda kv: -(kv[1][1]-c0.get(kv[0], ("",0))[1])):
            print(f"  {c - c0.get(pid, ('',0))[1]:7.1f} cpu-s  {pid} {name}")
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
