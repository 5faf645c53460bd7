# RSS of a server with N viewers that never read a task whose result is about 1 MiB.
# Usage: benches/memory/stuck_viewers.py PORT SERVER_PID before|after [N]  (before: the viewers
# watch while the result arrives; after: they open on the finished task). Start the server first:
#   target/release/sse-progress serve --listen 127.0.0.1:PORT --threads 1 --connect-rate-per-client 0 --max-streams-per-client 0 &
import json, socket, sys, time
port, pid, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 100
task = "big%d" % int(time.time() * 1000)

def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])

def call(method, path, body=None):
    s = socket.create_connection(("127.0.0.1", port))
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    s.sendall(head.encode() + data)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out.split(b"\r\n", 1)[0]

def viewers():
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET /api/brand-monitor/progress/{task} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n".encode())
        out.append(s)
    return out

def health():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    out = b""
    while True:
        b = s.recv(65536)
        if not b: break
        out += b
    return json.loads(out.split(b"\r\n\r\n", 1)[1])

for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port)).close(); break
    except OSError:
        time.sleep(0.05)
time.sleep(0.2)
idle = rss()
print("create", call("POST", "/api/brand-monitor/tasks", {"taskId": task}))
result = {"blob": "x" * 1_000_000}
if mode == "before":
    vs = viewers()
    while health()["activeConnections"] < n: time.sleep(0.05)
    held = rss()
    print("complete", call("POST", f"/api/brand-monitor/tasks/{task}/complete", {"result": result}))
else:
    print("complete", call("POST", f"/api/brand-monitor/tasks/{task}/complete", {"result": result}))
    held = rss()
    vs = viewers()
time.sleep(3)
h = health()
print(f"mode={mode} viewers={n} idle={idle} KiB, with viewers before the result={held} KiB, after the 1 MiB result={rss()} KiB, active={h['activeConnections']}")
for s in vs: s.close()
time.sleep(1)
print(f"after the viewers closed: {rss()} KiB")
