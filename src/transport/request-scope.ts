/**
 * The node:http handler in front of yoga: gives every request its id (request-id.ts), echoes it
 * in the `x-request-id` response header, and serves the request inside its child logger's scope,
 * so that every line logged on its behalf carries `reqId` (logger.ts). One debug line per request
 * when it is done: method, path, status and duration.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Logger, runWithLogger } from '../logger.js';
import { REQUEST_ID_HEADER, requestIdOf } from './request-id.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => unknown;

export function createRequestScope(handler: Handler, logger: Logger): Handler {
  return (req, res) => {
    const reqId = requestIdOf(req.headers[REQUEST_ID_HEADER]);
    res.setHeader(REQUEST_ID_HEADER, reqId);
    const log = logger.child({ reqId });
    if (log.isLevelEnabled('debug')) {
      const start = process.hrtime.bigint();
      res.once('close', () => {
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        const path = (req.url ?? '').split('?')[0];
        log.debug({ method: req.method, path, status: res.statusCode, ms }, 'request done');
      });
    }
    return runWithLogger(log, () => handler(req, res));
  };
}
