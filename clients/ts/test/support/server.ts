/**
 * A real agl-server (the Python daemon of this repository) for tests, and the Python check of
 * what a TypeScript agent wrote. The daemon comes from $AGL_SERVER_BIN or the repository's virtual
 * environment (<repo>/.venv/bin/agl-server, made by `make setup`), the interpreter from $AGL_PYTHON
 * or <repo>/.venv/bin/python.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { promisify } from "node:util";

import { type AglClient, connect } from "../../src/client.js";
import { sleep } from "../../src/util.js";

/** The repository root: the directory above holding pyproject.toml and protos/agl/v1. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "pyproject.toml")) && existsSync(join(dir, "protos", "agl", "v1"))) {
      return dir;
    }
    const parent = resolve(dir, "..");
    if (parent === dir) {
      throw new Error("test server: not inside the agl repository");
    }
    dir = parent;
  }
}

function tool(env: string, name: string): string {
  const fromEnv = process.env[env];
  if (fromEnv) {
    return fromEnv;
  }
  const path = join(repoRoot(), ".venv", "bin", name);
  if (!existsSync(path)) {
    throw new Error(`test server: ${path} not found; run \`make setup\` in the repository root or set ${env}`);
  }
  return path;
}

/** The interpreter of the repository's virtual environment. */
export function python(): string {
  return tool("AGL_PYTHON", "python");
}

/** An agl-server child process on a free loopback port over a fresh data directory. */
export class TestServer {
  address = "";
  port = 0;
  readonly scratch = mkdtempSync(join(tmpdir(), "agl-ts-"));
  readonly dataDir = join(this.scratch, "data");
  private process: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(readonly args: string[]) {}

  /** Starts agl-server with `args` added to its command line (durability nosync). */
  static async start(...args: string[]): Promise<TestServer> {
    const server = new TestServer(args);
    await server.launch();
    return server;
  }

  get pid(): number {
    return this.process?.pid ?? 0;
  }

  get logPath(): string {
    return join(this.scratch, "server.log");
  }

  private async launch(): Promise<void> {
    const ready = join(this.scratch, "ready.json");
    if (existsSync(ready)) {
      unlinkSync(ready);
    }
    const log = openSync(this.logPath, "a");
    const child = spawn(
      tool("AGL_SERVER_BIN", "agl-server"),
      [
        "--host", "127.0.0.1", "--port", String(this.port), "--data-dir", this.dataDir,
        "--ready-file", ready, "--durability", "nosync", "--grace", "2", ...this.args,
      ],
      { stdio: ["ignore", log, log] },
    );
    closeSync(log);
    this.process = child;
    let alive = true;
    this.exited = new Promise((done) => child.once("exit", () => {
      alive = false;
      done();
    }));
    // The daemon writes the ready file (atomically) once the store is open and the port bound.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (existsSync(ready)) {
        const info = JSON.parse(readFileSync(ready, "utf8")) as { port: number };
        this.port = info.port;
        this.address = `127.0.0.1:${info.port}`;
        return;
      }
      if (!alive) {
        throw new Error(`agl-server exited before serving:\n${this.logTail()}`);
      }
      await sleep(20);
    }
    child.kill("SIGKILL");
    throw new Error(`agl-server did not serve within 30s:\n${this.logTail()}`);
  }

  /** SIGTERM, and SIGKILL if it has not exited within 15s. */
  async stop(): Promise<void> {
    if (this.process?.exitCode === null && this.process.signalCode === null) {
      this.process.kill("SIGTERM");
      const timer = setTimeout(() => this.process?.kill("SIGKILL"), 15_000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  /** SIGKILL: a crash, nothing flushed. */
  async kill(): Promise<void> {
    this.process?.kill("SIGKILL");
    await this.exited;
  }

  /** Starts again on the same port and data directory. */
  async restart(): Promise<void> {
    await this.launch();
  }

  /** Stops the server and removes its files. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.scratch, { recursive: true, force: true });
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

/** What the Python check asserts about a rollout (see clients/interop/verify_rollout.py). */
export interface Expect {
  status?: string;
  reward?: number;
  /** The reward as an algorithm reads it (integers taken too). */
  read_reward?: number;
  span_count?: number;
  spans?: { name: string; parent?: string; scope?: string; attributes?: Record<string, unknown> }[];
}

/**
 * Reads the rollout back with the Python client; rejects with the script's findings when
 * something does not match.
 */
export async function verifyRollout(address: string, rolloutId: string, expect: Expect, token?: string): Promise<void> {
  const script = join(repoRoot(), "clients", "interop", "verify_rollout.py");
  const args = [script, "--address", address, "--rollout-id", rolloutId, "--expect", JSON.stringify(expect)];
  if (token) {
    args.push("--token", token);
  }
  try {
    await promisify(execFile)(python(), args);
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    throw new Error(`the Python check of rollout ${rolloutId} failed:\n${e.stdout ?? ""}${e.stderr ?? error}`);
  }
}

/**
 * A real agl-server and a client of it for the tests of one `describe` block: started before
 * them, stopped after them. Read `server` and `client` inside the tests.
 */
export function serverForSuite(...args: string[]): { readonly server: TestServer; readonly client: AglClient } {
  const state = {} as { server: TestServer; client: AglClient };
  before(async () => {
    state.server = await TestServer.start(...args);
    state.client = connect({ address: state.server.address });
  });
  after(async () => {
    await state.client.close();
    await state.server.dispose();
  });
  return state;
}

/**
 * Polls a condition (of a client, or a store record read with `await`: there is no event to wait
 * on) with a deadline.
 */
export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() >= deadline) {
      throw new Error(`condition not reached in ${timeoutMs}ms`);
    }
    await sleep(5);
  }
}
