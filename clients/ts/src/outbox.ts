import { abortion, deferred } from "./util.js";

/** The requests of one stream, in the order they are pushed; ending it half-closes the stream. */
export class Outbox<T> {
  private items: T[] = [];
  private ended = false;
  private wake = deferred<void>();

  push(request: T): void {
    if (!this.ended) {
      this.items.push(request);
      this.wake.resolve();
    }
  }

  end(): void {
    this.ended = true;
    this.wake.resolve();
  }

  async *requests(signal: AbortSignal): AsyncGenerator<T> {
    const aborted = abortion(signal);
    try {
      for (;;) {
        const request = this.items.shift();
        if (request !== undefined) {
          yield request;
          continue;
        }
        if (this.ended) {
          return;
        }
        await Promise.race([this.wake.promise, aborted.promise]);
        this.wake = deferred<void>();
      }
    } catch {
      return; // aborted: the call is over
    } finally {
      aborted.detach();
    }
  }
}
