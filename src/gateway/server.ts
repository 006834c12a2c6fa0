import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LatchkeyError } from '../core/errors.js';
import { createGateway, type Gateway } from './gateway.js';
import type { GatewayOptions } from './options.js';

/** Options of {@link startGateway}: the gateway's, plus where to listen. */
export interface StartGatewayOptions extends GatewayOptions {
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: any free port; the URL says which). */
  port?: number;
}

/** A running gateway server. */
export interface RunningGateway {
  /** `http://<host>:<port>` */
  url: string;
  gateway: Gateway;
  /** Stops accepting, lets requests in flight finish (at most 10 s), closes the gateway. */
  close(): Promise<void>;
}

/** Starts the reverse-proxy gateway on an HTTP server (WebSocket upgrades included). */
export async function startGateway(options: StartGatewayOptions): Promise<RunningGateway> {
  const gateway = await createGateway(options);
  const server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
    void gateway.handle(req, res);
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // Upgraded connections leave the server's books: kept here so that close() can end them.
  const upgraded = new Set<import('node:stream').Duplex>();
  server.on('upgrade', (req, socket, head) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    void gateway.upgrade(req, socket, head);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new LatchkeyError('LK_CONFIG_INVALID', `the gateway cannot listen on ${host}:${options.port ?? 0} (${err.code ?? 'error'})`, { cause: err }));
    });
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${addr.port}`,
    gateway,
    close() {
      closing ??= (async () => {
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        for (const s of upgraded) s.end();
        const timer = setTimeout(() => {
          server.closeAllConnections();
          for (const s of upgraded) s.destroy();
        }, 10_000);
        await done;
        clearTimeout(timer);
        for (const s of upgraded) s.destroy();
        await gateway.close();
      })();
      return closing;
    },
  };
}
