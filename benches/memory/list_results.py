"""RSS of an sse-progress server holding five ~1 MiB results, and the peak added by one GET /tasks.

Usage: benches/memory/list_results.py BINARY PORT SHAPE   (SHAPE: numbers | objects)
Reads /proc/PID/status of the server child; resets VmHWM with `echo 5 > /proc/PID/clear_refs`.
"""
import json, socket, subprocess, sys, time

binary, port, shape = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def status(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])  # kB
    return out

def req(method, path, body=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    data = b""
    if body is not None:
        data = body.encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    s.sendall(head.encode() + b"\r\n" + data)
    chunks = []
    while True:
        c = s.recv(1 << 20)
        if not c:
            break
        chunks.append(c)
    s.close()
    raw = b"".join(chunks)
    return int(raw.split(b" ", 2)[1]), raw

def result(i):
    # About 1 MiB of JSON (the body limit is 1 MiB, so a little less).
    limit = (1 << 20) - 64
    if shape == "numbers":
        items, size = [], 2
        while size + 4 < limit:
            items.append(str((i * 7 + len(items)) % 1000)); size += len(items[-1]) + 1
    else:
        items, size = [], 2
        while size + 40 < limit:
            items.append('{"id":%d,"ok":true,"tag":"t%d"}' % (len(items), i)); size += len(items[-1]) + 1
    return "[" + ",".join(items) + "]"

proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--threads", "2",
                         "--connect-rate-per-client", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(200):
        try:
            if req("GET", "/api/brand-monitor/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.3)
    base = status(proc.pid)
    sizes = []
    for i in range(5):
        assert req("POST", "/api/brand-monitor/tasks", json.dumps({"taskId": f"r{i}"}))[0] == 201
        r = result(i)
        sizes.append(len(r))
        code, raw = req("POST", f"/api/brand-monitor/tasks/r{i}/complete", '{"result":' + r + '}')
        assert code == 200, raw[:200]
    time.sleep(0.3)
    held = status(proc.pid)
    open(f"/proc/{proc.pid}/clear_refs", "w").write("5")
    before_list = status(proc.pid)
    code, raw = req("GET", "/api/brand-monitor/tasks")
    assert code == 200
    time.sleep(0.2)
    after_list = status(proc.pid)
    mib = lambda kb: kb / 1024
    print(f"{binary} shape={shape} results={sum(sizes)/1048576:.2f} MiB "
          f"| baseline RSS {mib(base['VmRSS']):.1f} MiB "
          f"| holding 5 results: +{mib(held['VmRSS'] - base['VmRSS']):.1f} MiB "
          f"| GET /tasks ({len(raw)/1048576:.1f} MiB answer): peak +{mib(after_list['VmHWM'] - before_list['VmRSS']):.1f} MiB")
finally:
    proc.terminate()
    proc.wait()
