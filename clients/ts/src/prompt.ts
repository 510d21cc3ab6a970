import type { JsonValue } from "@bufbuild/protobuf";

import { type PromptTemplate, PromptTemplateEngine } from "./gen/agl/v1/resources_pb.js";

/**
 * Fills a prompt template with `vars` the way Python's `str.format(**vars)` fills an F_STRING
 * template: `{name}` is replaced by `vars.name`, `{name[key]}` and `{name[0]}` index into objects
 * and arrays, `{{` and `}}` are literal braces. Values print as Python prints them (integral
 * numbers without ".0", True/False, None), except that objects and arrays print as JSON.
 * Conversions and format specs (`{x!r}`, `{x:>10}`) and JINJA templates are not supported and
 * throw an error that says so.
 */
export function formatPrompt(template: PromptTemplate, vars: { readonly [key: string]: JsonValue }): string {
  if (template.engine !== PromptTemplateEngine.UNSPECIFIED && template.engine !== PromptTemplateEngine.F_STRING) {
    throw new Error(
      `agl: prompt template engine ${PromptTemplateEngine[template.engine]} is not supported by the TypeScript client; use F_STRING`,
    );
  }
  const text = template.template;
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "{" && text[i + 1] === "{") {
      out += "{";
      i++;
    } else if (c === "}" && text[i + 1] === "}") {
      out += "}";
      i++;
    } else if (c === "}") {
      throw new Error(`agl: prompt template has a single '}' at offset ${i}; write '}}' for a literal brace`);
    } else if (c === "{") {
      const end = text.indexOf("}", i);
      if (end < 0) {
        throw new Error(`agl: prompt template has an unclosed '{' at offset ${i}`);
      }
      out += pythonString(lookup(text.slice(i + 1, end), vars));
      i = end;
    } else {
      out += c;
    }
  }
  return out;
}

function lookup(field: string, vars: { readonly [key: string]: JsonValue }): JsonValue {
  if (/[!:]/.test(field)) {
    throw new Error(`agl: prompt template field {${field}}: conversions and format specs are not supported`);
  }
  const bracket = field.indexOf("[");
  const name = bracket < 0 ? field : field.slice(0, bracket);
  if (!name) {
    throw new Error(`agl: prompt template field {${field}}: positional fields are not supported; name the field`);
  }
  if (!Object.hasOwn(vars, name)) {
    throw new Error(`agl: prompt template field {${field}}: the task input has no "${name}"`);
  }
  let value: JsonValue = vars[name] ?? null;
  let rest = bracket < 0 ? "" : field.slice(bracket);
  while (rest) {
    const match = /^\[([^\]]*)\]/.exec(rest);
    if (!match) {
      throw new Error(`agl: prompt template field {${field}}: missing ']'`);
    }
    const key = match[1]!;
    if (Array.isArray(value)) {
      const index = /^\d+$/.test(key) ? Number(key) : -1;
      if (index < 0 || index >= value.length) {
        throw new Error(`agl: prompt template field {${field}}: no index "${key}" in a list of ${value.length}`);
      }
      value = value[index]!;
    } else if (value !== null && typeof value === "object") {
      if (!Object.hasOwn(value, key)) {
        throw new Error(`agl: prompt template field {${field}}: no key "${key}"`);
      }
      value = value[key]!;
    } else {
      throw new Error(`agl: prompt template field {${field}}: cannot index a ${typeof value}`);
    }
    rest = rest.slice(match[0].length);
  }
  return value;
}

function pythonString(value: JsonValue): string {
  if (value === null) {
    return "None";
  }
  switch (typeof value) {
    case "string":
      return value;
    case "boolean":
      return value ? "True" : "False";
    case "number":
      return String(value);
  }
  return JSON.stringify(value);
}
