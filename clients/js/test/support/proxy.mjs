// A TCP proxy in front of the real server, so that a test can cut live connections (as a network
// does) and refuse new ones for a while, and can read what the server sent on each connection.
import net from 'node:net';

export async function startProxy(targetPort) {
  const live = new Set();
  const connections = [];
  let blocked = false;
  let refused = 0;
  const server = net.createServer((client) => {
    if (blocked) {
      refused += 1;
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const record = { received: [] };
    connections.push(record);
    const pair = { client, upstream };
    live.add(pair);
    const close = () => {
      live.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    upstream.on('data', (bytes) => record.received.push(bytes));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    /** What the server sent on each connection, as text. */
    texts: () => connections.map((c) => Buffer.concat(c.received).toString('utf8')),
    get refused() {
      return refused;
    },
    /** Cuts every live connection. (A plain close: `resetAndDestroy` on a piped socket can leave
     * Node 20 spinning on a closed handle after the test.) */
    cutAll() {
      for (const { client, upstream } of [...live]) {
        client.destroy();
        upstream.destroy();
      }
    },
    block() {
      blocked = true;
    },
    unblock() {
      blocked = false;
    },
    close() {
      this.cutAll();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
