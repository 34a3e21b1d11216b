/**
 * Small TCP helpers for starting local servers: parsing `host:port`, checking whether a port can be
 * bound, and finding a free port for test servers so they never collide with a developer's 7233.
 */
import net from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/** Parses `host:port` or `[ipv6]:port`. Throws a one-line error on anything else. */
export function parseHostPort(address: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`Invalid address "${address}": expected host:port, e.g. 127.0.0.1:7233`);
  }
  return { host, port };
}

/** Formats a host and port back into an address, bracketing IPv6 literals. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** True when nothing is listening on host:port (we could bind it ourselves). */
export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

/**
 * True when something accepts TCP connections on host:port. Unlike isPortFree this never binds,
 * so it is safe to poll while a server is starting up on that port.
 */
export function isListening(port: number, host = '127.0.0.1', timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** A port the OS considers free right now (there is an unavoidable race until someone binds it). */
export function getFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const addr = server.address();
      server.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('Could not determine a free port'));
      });
    });
  });
}

/**
 * A port p where p and p + 1000 are both free: `temporal server start-dev` puts the UI on port + 1000.
 * Tries `preferred` first (e.g. 7243), then OS-assigned ports.
 */
export async function findFreeTemporalPort(
  opts: { host?: string; preferred?: number } = {},
): Promise<number> {
  const host = opts.host ?? '127.0.0.1';
  const candidates: number[] = opts.preferred ? [opts.preferred] : [];
  for (let i = 0; i < 20; i++) candidates.push(await getFreePort(host));
  for (const port of candidates) {
    if (port + 1000 > 65535) continue;
    if ((await isPortFree(port, host)) && (await isPortFree(port + 1000, host))) return port;
  }
  throw new Error(`No free port pair (p, p+1000) found on ${host}`);
}
