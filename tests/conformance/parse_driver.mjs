// Every line of a file through the TypeScript SDK's serverMessageFromText.
// Usage: node parse_driver.mjs FRAMES.jsonl
//   -> {"bad": [[frame, error]...], "parsed": n, "local": [local-mode REST, stream URLs]}

import { readFileSync } from "node:fs";
import {
  LOCAL_EXIT_API_BASE_URL,
  LOCAL_STREAM_ENDPOINT,
  serverMessageFromText,
} from "@lasersell/lasersell-sdk";

const bad = [];
let parsed = 0;
for (const line of readFileSync(process.argv[2], "utf8").split("\n")) {
  if (!line) continue;
  try {
    serverMessageFromText(line);
    parsed += 1;
  } catch (error) {
    bad.push([line.slice(0, 200), String(error)]);
  }
}
const local = [LOCAL_EXIT_API_BASE_URL, LOCAL_STREAM_ENDPOINT];
console.log(JSON.stringify({ bad, parsed, local }));
