/**
 * The TypeScript side of the cross-language interop vectors (clients/interop/vectors): TS encodes
 * every vector, decodes the Python and Go encodings and compares them with its own, value for
 * value and, where the vector says so, byte for byte. See tests/interop/test_vectors.py for the
 * scheme; AGL_UPDATE_VECTORS=1 rewrites the TS encodings.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { createRegistry, fromBinary, fromJson, toBinary, toJson, type JsonValue, type Message } from "@bufbuild/protobuf";

import { file_agl_v1_resources } from "../src/gen/agl/v1/resources_pb.js";
import { file_agl_v1_runner } from "../src/gen/agl/v1/runner_pb.js";
import { file_agl_v1_store } from "../src/gen/agl/v1/store_pb.js";
import { file_agl_v1_trace } from "../src/gen/agl/v1/trace_pb.js";
import { file_agl_v1_types } from "../src/gen/agl/v1/types_pb.js";
import { repoRoot } from "./support/server.js";

const registry = createRegistry(file_agl_v1_store, file_agl_v1_types, file_agl_v1_trace, file_agl_v1_resources, file_agl_v1_runner);
const dir = join(repoRoot(), "clients", "interop", "vectors");
const languages = ["python", "go", "ts"];
const update = process.env.AGL_UPDATE_VECTORS === "1";

interface Vector {
  description: string;
  type: string;
  byte_exact: boolean;
  message: JsonValue;
}

/**
 * The JSON with object keys sorted. Map fields (and Struct) keep the order of the JSON object in
 * protobuf-es, so sorting gives the deterministic order Python and Go use for maps; keys that
 * look like integers still come first (JavaScript's object order), see struct_integer_like_keys.
 */
function sortKeys(value: JsonValue): JsonValue {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys(value[k]!)]),
    );
  }
  return value;
}

describe("interop vectors", () => {
  const names = readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -".json".length))
    .sort();

  it("has an encoding of every vector for every language", { skip: update }, () => {
    assert.ok(names.length >= 10, `only ${names.length} vectors`);
    for (const language of languages) {
      for (const name of names) {
        assert.ok(existsSync(join(dir, "encoded", language, `${name}.binpb`)), `${language}/${name}.binpb missing`);
      }
    }
  });

  for (const name of names) {
    it(name, () => {
      const vector = JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8")) as Vector;
      const schema = registry.getMessage(vector.type);
      assert.ok(schema, `unknown type ${vector.type}`);
      const message = fromJson(schema, sortKeys(vector.message));
      const ours = toBinary(schema, message);
      const mine = join(dir, "encoded", "ts", `${name}.binpb`);
      if (update) {
        writeFileSync(mine, ours); // write only; the other languages' encodings may not be rewritten yet
        return;
      }
      assert.deepEqual(new Uint8Array(readFileSync(mine)), ours, `${mine} is stale; run \`make interop-vectors\``);

      // Values compare in their JSON form: NaN is "NaN" there (equals() finds NaN unequal to
      // itself), and deepStrictEqual tells -0 from 0.
      const json = toJson(schema, message);
      // The description survives a round trip through protobuf-es's JSON writer and parser.
      assert.deepEqual(toJson(schema, fromJson(schema, json)), json, "JSON round trip changed the message");

      for (const language of languages) {
        const theirs = new Uint8Array(readFileSync(join(dir, "encoded", language, `${name}.binpb`)));
        const decoded: Message = fromBinary(schema, theirs, { readUnknownFields: true });
        assert.deepEqual(toJson(schema, decoded), json, `${language}'s encoding of ${name} decodes to another value`);
        assert.equal(decoded.$unknown, undefined, `${language}'s encoding has fields TypeScript does not know`);
        if (vector.byte_exact) {
          assert.deepEqual(theirs, ours, `${language} encodes ${name} with other bytes than TypeScript`);
        }
      }
    });
  }
});
