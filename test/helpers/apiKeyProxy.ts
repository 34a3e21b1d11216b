/**
 * A stand-in for an API-key-secured Temporal frontend (as Temporal Cloud is): an HTTP/2 TLS
 * server that answers every gRPC call whose `authorization` is not `Bearer <key>` with
 * UNAUTHENTICATED, and forwards the others, stream by stream with headers and trailers, to the
 * plaintext dev server.
 */
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

export interface ApiKeyProxy {
  address: string;
  /** Calls refused for a missing or wrong key. */
  refused: number;
  /** Calls forwarded with the right key. */
  forwarded: number;
  close(): Promise<void>;
}

export async function startApiKeyProxy(opts: {
  upstream: string;
  cert: string;
  key: string;
  apiKey: string;
}): Promise<ApiKeyProxy> {
  const upstream = http2.connect(`http://${opts.upstream}`);
  upstream.on('error', () => undefined);
  const server = http2.createSecureServer({
    cert: readFileSync(opts.cert),
    key: readFileSync(opts.key),
    ALPNProtocols: ['h2'],
  });
  const proxy: ApiKeyProxy = {
    address: '',
    refused: 0,
    forwarded: 0,
    close: () =>
      new Promise<void>((resolve) => {
        // Clients keep their sessions open: end them, or close() waits for them.
        for (const session of sessions) session.destroy();
        upstream.destroy();
        server.close(() => resolve());
      }),
  };
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (headers.authorization !== `Bearer ${opts.apiKey}`) {
      proxy.refused++;
      // gRPC status 16 UNAUTHENTICATED, as a trailers-only response.
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': '16',
          'grpc-message': 'bad API key',
        },
        { endStream: true },
      );
      return;
    }
    proxy.forwarded++;
    const forward: http2.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(headers)) if (k !== ':authority' && k !== ':scheme') forward[k] = v;
    const req = upstream.request(forward);
    req.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    let trailers: http2.IncomingHttpHeaders | undefined;
    // A call the client gave up on (a long poll at shutdown) ends both ways.
    stream.on('close', () => {
      if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
    });
    req.on('close', () => {
      if (!stream.closed && !stream.headersSent) stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    req.on('response', (h) => {
      if (stream.destroyed || stream.headersSent) return;
      const { ':status': status, ...rest } = h;
      stream.respond({ ':status': status ?? 200, ...rest }, { waitForTrailers: true });
    });
    req.on('trailers', (t: http2.IncomingHttpHeaders) => {
      trailers = t;
    });
    stream.on('wantTrailers', () => {
      if (!stream.destroyed) stream.sendTrailers(trailers ?? {});
    });
    stream.pipe(req);
    req.pipe(stream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
