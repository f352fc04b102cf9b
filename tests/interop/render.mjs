#!/usr/bin/env node
// tests/interop/render.mjs — @huggingface/jinja (what transformers.js uses, with
// transformers' settings trim_blocks + lstrip_blocks) as the chat-template oracle
// for tests/test_chat_template.c.
//
//   node render.mjs TEMPLATE_FILE VARS.json
//       renders the template with the variables of VARS.json (messages,
//       add_generation_prompt, bos_token, ...) and writes the exact bytes to
//       stdout. When SOURCE_DATE_EPOCH is set, strftime_now(fmt) formats that
//       time in UTC (the same "now" slm uses), so dated templates (Llama 3.2)
//       are reproducible. Exit 3 on a template error (message on stderr).
//
// @huggingface/jinja is resolved from $NODE_PATH, then tests/interop/node_modules.
import fs from "node:fs";
import path from "node:path";
import {createRequire} from "node:module";
import {fileURLToPath, pathToFileURL} from "node:url";

async function loadJinja() {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const bases = [...(process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean),
                   path.join(here, "node_modules"), here];
    for (const base of bases) {
        try {
            const req = createRequire(path.join(base, "noop.js"));
            return await import(pathToFileURL(req.resolve("@huggingface/jinja")).href);
        } catch {
            // next place
        }
    }
    process.stderr.write("@huggingface/jinja not installed (make deps)\n");
    process.exit(3);
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December"];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

// Python's strftime (C locale) for the directives chat templates use, in UTC.
function strftimeUTC(date, fmt) {
    const p2 = (n) => String(n).padStart(2, "0");
    return fmt.replace(/%[YmdbBHMSyaAjp%]/g, (t) => {
        switch (t) {
            case "%Y": return String(date.getUTCFullYear());
            case "%y": return p2(date.getUTCFullYear() % 100);
            case "%m": return p2(date.getUTCMonth() + 1);
            case "%d": return p2(date.getUTCDate());
            case "%b": return MONTHS[date.getUTCMonth()].slice(0, 3);
            case "%B": return MONTHS[date.getUTCMonth()];
            case "%a": return DAYS[date.getUTCDay()].slice(0, 3);
            case "%A": return DAYS[date.getUTCDay()];
            case "%H": return p2(date.getUTCHours());
            case "%M": return p2(date.getUTCMinutes());
            case "%S": return p2(date.getUTCSeconds());
            case "%p": return date.getUTCHours() < 12 ? "AM" : "PM";
            case "%j": {
                const start = Date.UTC(date.getUTCFullYear(), 0, 1);
                return String(Math.floor((date.getTime() - start) / 86400000) + 1).padStart(3, "0");
            }
            default: return "%";
        }
    });
}

const [tplFile, varsFile] = process.argv.slice(2);
if (!tplFile || !varsFile) {
    process.stderr.write("usage: node render.mjs TEMPLATE_FILE VARS.json\n");
    process.exit(2);
}
const {Template, Environment} = await loadJinja();
const vars = JSON.parse(fs.readFileSync(varsFile, "utf8"));
const sde = process.env.SOURCE_DATE_EPOCH;
if (sde !== undefined && sde !== "") {
    // strftime_now is one of the package's globals: replace it where it is declared
    const when = new Date(Number(sde) * 1000);
    const fixed = (fmt) => strftimeUTC(when, fmt);
    const set = Environment.prototype.set;
    Environment.prototype.set = function (name, value) {
        return set.call(this, name, name === "strftime_now" ? fixed : value);
    };
}
try {
    const out = new Template(fs.readFileSync(tplFile, "utf8")).render(vars);
    process.stdout.write(out);
} catch (e) {
    process.stderr.write(`template error: ${e.message}\n`);
    process.exit(3);
}
