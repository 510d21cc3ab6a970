import { ConnectError, type Interceptor } from "@connectrpc/connect";

import { Outage, UNARY_RETRYABLE } from "./retry.js";
import { sleep } from "./util.js";

/** Sends `token` as a bearer credential on every call (agl-server --token). */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/**
 * Retries unary calls that fail with UNAVAILABLE (server down, restarting, overloaded) until the
 * retry deadline or the call's own deadline (docs/retry.md). Calls that create things are safe to
 * retry: rollouts with client-chosen ids and spans with their ids are deduplicated by the server.
 */
export function retryUnavailable(deadlineMs: number): Interceptor {
  return (next) => async (req) => {
    if (req.stream) {
      return next(req);
    }
    const outage = new Outage(deadlineMs);
    for (;;) {
      let wait: number | undefined;
      try {
        return await next(req);
      } catch (error) {
        wait = UNARY_RETRYABLE.has(ConnectError.from(error).code) ? outage.failed() : undefined;
        if (wait === undefined || req.signal.aborted) {
          throw error;
        }
      }
      await sleep(wait, req.signal);
    }
  };
}
