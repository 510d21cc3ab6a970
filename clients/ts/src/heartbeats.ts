/**
 * Calls `beat` every `intervalMs` until the returned function is called. The first beat comes at a
 * random point of the first interval: workers started together (a launcher starting a fleet) would
 * otherwise beat in the same instant every interval, and each beat is a store write on the server.
 * The timers do not keep the process alive.
 */
export function startHeartbeats(intervalMs: number, beat: () => void): () => void {
  let timer = setTimeout(() => {
    beat();
    timer = setInterval(beat, intervalMs);
    timer.unref();
  }, Math.random() * intervalMs);
  timer.unref();
  return () => clearTimeout(timer); // the first beat's timeout or, after it, the interval
}
