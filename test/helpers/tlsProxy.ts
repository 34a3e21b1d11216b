/**
 * A TLS-terminating proxy in front of a plaintext gRPC server (the Temporal dev server), as a
 * load balancer in front of a secured cluster would be: it offers ALPN h2 and passes the
 * decrypted bytes through. With `clientCa` it requires a client certificate signed by it (mTLS).
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

export interface TlsProxy {
  address: string;
  /** Handshakes that failed (e.g. no or a wrong client certificate). */
  refusals: number;
  close(): Promise<void>;
}

export async function startTlsProxy(opts: {
  upstream: string;
  cert: string;
  key: string;
  clientCa?: string;
}): Promise<TlsProxy> {
  const [host, port] = opts.upstream.split(':') as [string, string];
  const sockets = new Set<net.Socket>();
  const state = { refusals: 0 };
  const server = tls.createServer(
    {
      cert: readFileSync(opts.cert),
      key: readFileSync(opts.key),
      ALPNProtocols: ['h2'],
      ...(opts.clientCa
        ? { ca: readFileSync(opts.clientCa), requestCert: true, rejectUnauthorized: true }
        : {}),
    },
    (client) => {
      const upstream = net.connect(Number(port), host);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    },
  );
  server.on('tlsClientError', () => state.refusals++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    address,
    get refusals() {
      return state.refusals;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
