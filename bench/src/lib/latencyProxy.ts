import net from 'node:net';

/** A loopback TCP endpoint standing in for a remote API server. */
export interface Endpoint {
  port: number;
  url: string;
  stop(): Promise<void>;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () =>
      resolve((server.address() as net.AddressInfo).port),
    );
  });
}

function closeAll(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise(resolve => server.close(() => resolve()));
}

/**
 * Forwards every byte between a client and `target` after `oneWayMs` in each direction (so a
 * round trip gets 2 × oneWayMs more), keeping order: one timer per chunk, and Node fires timers
 * of equal duration in the order they were set. Ends are delayed like data.
 */
export async function startLatencyProxy(
  target: { host: string; port: number },
  oneWayMs: number,
): Promise<Endpoint> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };
  const relay = (from: net.Socket, to: net.Socket) => {
    from.on('data', chunk =>
      setTimeout(() => !to.destroyed && to.write(chunk), oneWayMs),
    );
    from.on('end', () => setTimeout(() => !to.destroyed && to.end(), oneWayMs));
    from.on('error', () => setTimeout(() => to.destroy(), oneWayMs));
    from.on('close', () => setTimeout(() => to.destroy(), oneWayMs));
  };
  const server = net.createServer(client => {
    track(client);
    const upstream = net.connect(target.port, target.host);
    track(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    relay(client, upstream);
    relay(upstream, client);
  });
  const port = await listen(server);
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    stop: () => closeAll(server, sockets),
  };
}

/** Accepts connections and never answers nor closes them: a cluster behind a black hole. */
export async function startBlackHole(): Promise<Endpoint> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer(s => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.resume(); // read and drop whatever the client sends
  });
  const port = await listen(server);
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    stop: () => closeAll(server, sockets),
  };
}
