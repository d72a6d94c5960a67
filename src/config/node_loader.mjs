// Evaluates a Rollbridge config module with the host's Node.js and prints
// the result as JSON after a marker line, so console output of the config
// itself can never be mistaken for the result.
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { register } from "node:module";

const MARK = "\n@@ROLLBRIDGE-CONFIG@@";
const file = resolve(process.argv[1]);
const url = pathToFileURL(file).href;

class DataError extends Error {}

function where(path) {
  return path === "" ? "the exported config" : path;
}

function encode(value, path, seen) {
  if (value === null) return null;
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : { $rollbridgeNonFinite: String(value) };
    case "undefined":
      return undefined;
    case "function":
      throw new DataError(`${where(path)} is a function; config values must be plain data (strings, numbers, booleans, arrays and objects)`);
    case "symbol":
    case "bigint":
      throw new DataError(`${where(path)} is a ${typeof value}, which JSON cannot carry; use a string or number`);
  }
  if (typeof value.toJSON === "function") return encode(value.toJSON(), path, seen);
  if (seen.has(value)) {
    throw new DataError(`${where(path)} refers back to one of its own parents (a cycle); config values must be plain data`);
  }
  seen.add(value);
  let out;
  if (Array.isArray(value)) {
    out = value.map((item, i) => {
      const e = encode(item, `${path}[${i}]`, seen);
      return e === undefined ? null : e;
    });
  } else {
    out = {};
    for (const key of Object.keys(value)) {
      const e = encode(value[key], path === "" ? key : `${path}.${key}`, seen);
      if (e !== undefined) out[key] = e;
    }
  }
  seen.delete(value);
  return out;
}

function errorText(err) {
  if (err instanceof DataError) return err.message;
  if (err instanceof Error) {
    const stack = String(err.stack || err.message);
    const lines = stack.split("\n");
    const firstFrame = lines.findIndex((l) => /^\s+at /.test(l));
    return (firstFrame === -1 ? lines : lines.slice(0, firstFrame)).join("\n").trim();
  }
  return String(err);
}

function looksLikeEsmInCjs(err) {
  return err instanceof SyntaxError &&
    /Cannot use import statement outside a module|Unexpected token 'export'|await is only valid/.test(err.message);
}

async function importConfig() {
  try {
    return await import(url);
  } catch (err) {
    if (!looksLikeEsmInCjs(err)) throw err;
    // A package.json with "type": "commonjs" near the file blocks syntax
    // detection; force ESM for this one file.
    const hooks = `export async function load(u, ctx, next) {
      if (u.split("?")[0] === ${JSON.stringify(url)}) return next(u, { ...ctx, format: "module" });
      return next(u, ctx);
    }`;
    register("data:text/javascript," + encodeURIComponent(hooks));
    return await import(url + "?rollbridge-esm");
  }
}

let result;
try {
  const mod = await importConfig();
  if (!("default" in mod) || mod.default === undefined) {
    throw new DataError(`${file} must default-export a config object or function (export default {...} or module.exports = {...})`);
  }
  let value = mod.default;
  if (typeof value === "function") value = await value();
  result = { ok: encode(value, "", new Set()) ?? null };
} catch (err) {
  result = { error: errorText(err) };
}
process.stdout.write(MARK + JSON.stringify(result) + "\n", () => process.exit(0));
