// tests/interop/openai_client.mjs — the official `openai` npm client against `slm serve`.
// usage: node openai_client.mjs BASE_URL [API_KEY]
// Prints one JSON object: what the client parsed from each kind of request (chat and
// completions, streaming and not, logprobs, usage) and how it reports a refused request.
import OpenAI from 'openai';

const [base, key] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base + '/v1', apiKey: key || 'unused', maxRetries: 0, timeout: 30000 });
const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const chat = await client.chat.completions.create({
  model: out.models[0], messages: [{ role: 'user', content: 'Tell me a story.' }],
  max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 2,
});
out.chat = {
  text: chat.choices[0].message.content, role: chat.choices[0].message.role,
  finish: chat.choices[0].finish_reason, usage: chat.usage,
  logprobs: chat.choices[0].logprobs.content.map((t) => ({ token: t.token, logprob: t.logprob, top: t.top_logprobs.length })),
};

let text = '', chunks = 0, usage = null, finish = null;
const cs = await client.chat.completions.create({
  model: out.models[0], messages: [{ role: 'user', content: 'Tell me a story.' }],
  max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
});
for await (const ch of cs) {
  chunks++;
  if (ch.usage) usage = ch.usage;
  if (ch.choices.length) {
    text += ch.choices[0].delta.content || '';
    if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
  }
}
out.chatStream = { text, chunks, usage, finish };

const comp = await client.completions.create({
  model: out.models[0], prompt: 'Once upon a time', max_tokens: 16, temperature: 0, logprobs: 2,
});
out.comp = {
  text: comp.choices[0].text, finish: comp.choices[0].finish_reason, usage: comp.usage,
  tokens: comp.choices[0].logprobs.tokens, token_logprobs: comp.choices[0].logprobs.token_logprobs,
  top: comp.choices[0].logprobs.top_logprobs,
};

text = ''; chunks = 0;
const ps = await client.completions.create({
  model: out.models[0], prompt: 'Once upon a time', max_tokens: 16, temperature: 0, stream: true,
});
for await (const ch of ps) { chunks++; text += ch.choices.length ? ch.choices[0].text : ''; }
out.compStream = { text, chunks };

try {
  await client.completions.create({ model: out.models[0], prompt: 'x', max_tokens: -5 });
  out.refused = { status: 0 };
} catch (e) {
  out.refused = { status: e.status, message: e.error?.message ?? e.message };
}
console.log(JSON.stringify(out));
