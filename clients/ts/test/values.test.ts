import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { create, toBinary } from "@bufbuild/protobuf";

import {
  anyValue,
  attr,
  attributeMap,
  double,
  formatPrompt,
  fromAnyValue,
  int,
  jsonValue,
  namedRewardSpan,
  newSpan,
  PromptTemplateEngine,
  PromptTemplateSchema,
  rewardSpan,
  semconv,
  SpanSchema,
  valueJson,
} from "../src/index.js";
import { estimateSize } from "../src/span_size.js";

describe("attribute values", () => {
  it("round-trips every kind", () => {
    const input = {
      s: "x",
      b: true,
      i: 7,
      big: 2n ** 62n,
      f: 1.5,
      bytes: new Uint8Array([1, 2]),
      list: ["a", [1, false]],
      nested: { k: { deep: null } },
      map: new Map([["m", 1]]),
    };
    assert.deepEqual(fromAnyValue(anyValue(input)), {
      s: "x",
      b: true,
      i: 7,
      big: 2n ** 62n,
      f: 1.5,
      bytes: new Uint8Array([1, 2]),
      list: ["a", [1, false]],
      nested: { k: { deep: null } },
      map: { m: 1 },
    });
  });

  it("types numbers like the OpenTelemetry JS SDK, with explicit wrappers", () => {
    assert.equal(anyValue(3).value.case, "intValue");
    assert.equal(anyValue(3.5).value.case, "doubleValue");
    assert.equal(anyValue(2 ** 60).value.case, "doubleValue"); // beyond 2**53 a number is not an exact integer
    assert.equal(double(3).value.case, "doubleValue");
    assert.equal(int(3).value.case, "intValue");
    assert.equal(anyValue(new Date(0)).value.case, "stringValue");
    assert.deepEqual(attributeMap([attr("a", 1), attr("a", 2)]), { a: 2 });
  });

  it("writes rewards as doubles", () => {
    const reward = rewardSpan(1);
    assert.equal(reward.name, semconv.SPAN_REWARD);
    assert.equal(reward.attributes[0]?.value?.value.case, "doubleValue");
    assert.deepEqual(attributeMap(reward.attributes), {
      [semconv.REWARD_VALUE]: 1,
      [semconv.REWARD_NAME]: "reward",
      [`${semconv.REWARD_VALUES_PREFIX}reward`]: 1,
    });
    const named = namedRewardSpan("acc", { acc: 0.5, len: -1 });
    assert.deepEqual(attributeMap(named.attributes), {
      [semconv.REWARD_VALUE]: 0.5,
      [semconv.REWARD_NAME]: "acc",
      [`${semconv.REWARD_VALUES_PREFIX}acc`]: 0.5,
      [`${semconv.REWARD_VALUES_PREFIX}len`]: -1,
    });
    assert.ok(named.attributes.every((kv) => kv.key === semconv.REWARD_NAME || kv.value?.value.case === "doubleValue"));
    assert.throws(() => namedRewardSpan("missing", { acc: 1 }), /not among the rewards/);
  });

  it("converts task inputs to and from JSON", () => {
    const input = { q: "x", n: [1, 2.5, null, true], o: {} };
    assert.deepEqual(valueJson(jsonValue(input)), input);
    assert.equal(valueJson(undefined), null);
  });
});

describe("formatPrompt", () => {
  const vars = { q: "2+2?", n: 3, x: 2.5, ok: false, none: null, m: { k: ["a", "b"] } };
  const template = (text: string, engine = PromptTemplateEngine.F_STRING) =>
    create(PromptTemplateSchema, { template: text, engine });

  it("fills fields like Python's str.format", () => {
    assert.equal(
      formatPrompt(template("{{literal}} {q} n={n} x={x} {ok} {none} {m[k][1]} {m}"), vars),
      '{literal} 2+2? n=3 x=2.5 False None b {"k":["a","b"]}',
    );
  });

  it("explains what it cannot fill", () => {
    const cases: [string, RegExp][] = [
      ["{missing}", /no "missing"/],
      ["{q!r}", /conversions/],
      ["{}", /positional/],
      ["{q", /unclosed/],
      ["}", /single '}'/],
      ["{m[z]}", /no key "z"/],
      ["{m[k][5]}", /no index/],
      ["{q[0]}", /cannot index/],
    ];
    for (const [text, error] of cases) {
      assert.throws(() => formatPrompt(template(text), vars), error, text);
    }
    assert.throws(() => formatPrompt(template("x", PromptTemplateEngine.JINJA), vars), /JINJA/);
  });
});

describe("span size estimate", () => {
  it("is close to the encoded size", () => {
    const spans = [
      newSpan("small"),
      newSpan("payload", [attr("payload", "x".repeat(100_000)), attr("i", 1)]),
      newSpan("unicode", [attr("s", "世界✓".repeat(1000)), attr("bytes", new Uint8Array(5000))]),
      newSpan("nested", [attr("deep", { a: [1, 2.5, [true, "x"], { b: new Uint8Array(10) }], c: null })]),
      rewardSpan(0.5),
    ];
    for (const span of spans) {
      span.traceId = new Uint8Array(16).fill(1);
      span.rolloutId = "ro-123";
      span.attemptId = "at-456";
      const actual = toBinary(SpanSchema, span).length;
      const estimate = estimateSize(span);
      assert.ok(Math.abs(estimate - actual) <= actual * 0.1 + 96, `${span.name}: estimate ${estimate}, actual ${actual}`);
    }
  });
});
