import { Code, ConnectError } from "@connectrpc/connect";

import type { ItemError } from "./gen/agl/v1/types_pb.js";

/**
 * A call to agl-server that failed: what the client was doing, and the gRPC status the server
 * (or the transport) gave. It is a ConnectError, so `code` is the status code (`Code.NotFound`,
 * ...) and `ConnectError.from(error)` returns it as it is; `serverMessage` is the server's own
 * message and `cause` the original error.
 */
export class AglError extends ConnectError {
  readonly serverMessage: string;

  // ConnectError's own instanceof check accepts any ConnectError (it matches by shape, for errors
  // from other copies of the library); an AglError is one made by this class. Its name stays
  // "ConnectError" so that check, and ConnectError.from, recognise it.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(AglError, value);
  }

  constructor(
    readonly op: string,
    readonly address: string,
    cause: unknown,
  ) {
    const error = ConnectError.from(cause);
    super(AglError.describe(op, address, error), error.code, error.metadata, undefined, error);
    this.serverMessage = error.rawMessage;
  }

  private static describe(op: string, address: string, error: ConnectError): string {
    let message = `agl: ${op}: ${error.rawMessage}`;
    if (error.code === Code.Unavailable) {
      const port = address.slice(address.lastIndexOf(":") + 1);
      message +=
        ` (agl-server at ${address} is not reachable: start it with \`agl-server --port ${port}\`,` +
        " or point AGL_SERVER_ADDRESS at a running one)";
    } else if (error.code === Code.Unauthenticated) {
      message += " (set the token with AGL_TOKEN or the token option)";
    }
    return message;
  }
}

/** Items of a batch that failed while the rest succeeded (partial success). */
export class ItemErrors<T = unknown> extends Error {
  override readonly name = "ItemErrors";

  /**
   * @param what what the batch was for.
   * @param items the failed items (index in the batch, gRPC code, message).
   * @param results the batch's results, one per item (undefined where it failed).
   */
  constructor(
    readonly what: string,
    readonly items: ItemError[],
    readonly results: T[] = [],
  ) {
    super(
      `agl: ${what}: ${items.length} items failed: ` +
        items.map((e) => `[${e.index}] ${Code[e.code] ?? e.code}: ${e.message}`).join("; "),
    );
  }
}

/**
 * Why a handler's signal aborted when the server refused its attempt's RUNNING report: the
 * attempt is no longer the worker's to run (it timed out, was cancelled, or the worker lost it),
 * so the handler should stop. The runner reports nothing final for it (the source frees its
 * slot), and `Task.finish` rejects with this error for it. `cause` is the report's error (an
 * `AglError` with the store's code, e.g. FailedPrecondition).
 */
export class NotStartedError extends Error {
  override readonly name = "NotStartedError";

  constructor(
    readonly rolloutId: string,
    readonly attemptId: string,
    cause: unknown,
  ) {
    super(
      `agl: the server refused to start attempt "${attemptId}" of rollout "${rolloutId}": ` +
        (cause instanceof Error ? cause.message : String(cause)),
      { cause },
    );
  }
}
