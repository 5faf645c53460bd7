// The SSE parser follows the WHATWG "server-sent events" interpretation whatever the chunking:
// CR, LF and CRLF line ends (a CRLF split across chunks is one), UTF-8 split across chunks, a
// leading BOM, comments, multi-line data, `id:` and `retry:` rules, and an unfinished last event.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createSSEParser } from '../sse-progress.js';

const utf8 = (text) => new TextEncoder().encode(text);

/** Parses `chunks` (strings are sent as UTF-8 bytes) and returns the events and the parser. */
function parse(chunks, options = {}) {
  const events = [];
  const retries = [];
  const parser = createSSEParser((e) => events.push({ ...e }), { ...options, onRetry: (ms) => retries.push(ms) });
  for (const chunk of chunks) parser.push(typeof chunk === 'string' ? utf8(chunk) : chunk);
  parser.end();
  return { events, retries, parser };
}

/** Every way of cutting `bytes` in two, and byte by byte. */
function cuts(bytes) {
  const ways = [[bytes], [...bytes].map((b) => Uint8Array.of(b))];
  for (let at = 1; at < bytes.length; at++) ways.push([bytes.slice(0, at), bytes.slice(at)]);
  return ways;
}

// A table: name, the stream, the events expected (type, data, lastEventId).
const cases = [
  ['one event with LF line ends', 'event: progress\nid: 7\ndata: {"a":1}\n\n', [['progress', '{"a":1}', '7']]],
  ['CRLF line ends', 'event: progress\r\nid: 7\r\ndata: x\r\n\r\n', [['progress', 'x', '7']]],
  ['CR-only line ends', 'event: progress\rid: 7\rdata: x\r\r', [['progress', 'x', '7']]],
  ['mixed line ends', 'data: a\rdata: b\r\ndata: c\n\r\n', [['message', 'a\nb\nc', '']]],
  ['several data lines join with LF', 'data: one\ndata: two\ndata:\ndata: three\n\n', [['message', 'one\ntwo\n\nthree', '']]],
  ['comments are ignored', ': hello\ndata: a\n:another\n\n:\n\n', [['message', 'a', '']]],
  ['no space after the colon', 'data:x\n\n', [['message', 'x', '']]],
  ['only one leading space is removed', 'data:  x \n\n', [['message', ' x ', '']]],
  ['a field with no colon has an empty value', 'data\n\ndata\ndata\n\n', [['message', '', ''], ['message', '\n', '']]],
  ['an event type resets after each event', 'event: a\ndata: 1\n\ndata: 2\n\n', [['a', '1', ''], ['message', '2', '']]],
  ['an event without data is not dispatched, and its type is forgotten', 'event: a\n\ndata: 2\n\n', [['message', '2', '']]],
  ['the id persists across events', 'id: 5\ndata: 1\n\ndata: 2\n\n', [['message', '1', '5'], ['message', '2', '5']]],
  ['an id with NULL is ignored', 'id: 5\ndata: 1\n\nid: 6\u00007\ndata: 2\n\n', [['message', '1', '5'], ['message', '2', '5']]],
  ['an empty id clears it', 'id: 5\ndata: 1\n\nid\ndata: 2\n\n', [['message', '1', '5'], ['message', '2', '']]],
  ['unknown fields are ignored', 'foo: bar\ndata: 1\nevent\n\n', [['message', '1', '']]],
  ['an unfinished last event is discarded', 'data: 1\n\ndata: 2\n', [['message', '1', '']]],
  ['a leading BOM is dropped once', '\uFEFFdata: 1\n\n\uFEFFdata: 2\n\n', [['message', '1', '']]],
  ['non-ASCII text', 'data: {"stage":"Analyse de marque é€😀"}\n\n', [['message', '{"stage":"Analyse de marque é€😀"}', '']]],
];

for (const [name, stream, expected] of cases) {
  test(`parser: ${name}, however the bytes are cut`, () => {
    const want = expected.map(([type, data, lastEventId]) => ({ type, data, lastEventId }));
    for (const chunks of cuts(utf8(stream))) {
      assert.deepEqual(parse(chunks).events, want, `cut as ${chunks.map((c) => c.length).join('+')}`);
    }
  });
}

test('parser: a CRLF split across two chunks is one line end, not two', () => {
  // Were the LF read as a second line end, the empty line would dispatch "a" alone.
  const { events } = parse(['data: a\r', '\ndata: b\r\n\r\n']);
  assert.deepEqual(events.map((e) => e.data), ['a\nb']);
});

test('parser: a CR at a chunk end ends the line at once', () => {
  const events = [];
  const parser = createSSEParser((e) => events.push(e));
  parser.push(utf8('data: a\r'));
  parser.push(utf8('\r'));
  // The event is out before any further byte arrives (a stream may pause here for long).
  assert.deepEqual(events.map((e) => e.data), ['a']);
});

test('parser: a UTF-8 character split across chunks is decoded whole', () => {
  const bytes = utf8('data: €😀\n\n');
  // Cut inside the 3-byte euro sign and inside the 4-byte emoji.
  const { events } = parse([bytes.slice(0, 7), bytes.slice(7, 10), bytes.slice(10, 12), bytes.slice(12)]);
  assert.deepEqual(events.map((e) => e.data), ['€😀']);
});

test('parser: retry takes ASCII digits only', () => {
  const { retries, parser } = parse(['retry: 2000\n', 'retry: 1a\n', 'retry: -5\n', 'retry:\n', 'retry: 300\n\n']);
  assert.deepEqual(retries, [2000, 300]);
  assert.equal(parser.retry, 300);
});

test('parser: an id without data still moves the last event id', () => {
  const { events, parser } = parse(['id: 9\n\n']);
  assert.deepEqual(events, []);
  assert.equal(parser.lastEventId, '9');
});

test('parser: the last event id can start from a previous connection', () => {
  const { events } = parse(['event: heartbeat\ndata: {}\n\n'], { lastEventId: '41' });
  assert.equal(events[0].lastEventId, '41');
});

test('parser: text chunks are taken as they are (BOM dropped once)', () => {
  const events = [];
  const parser = createSSEParser((e) => events.push(e.data));
  parser.push('\uFEFFdata: a');
  parser.push('\r');
  parser.push('\n\n');
  assert.deepEqual(events, ['a']);
});

test('parser: a line longer than the bound is refused, not buffered without end', () => {
  const parser = createSSEParser(() => {});
  const block = 'x'.repeat(1024 * 1024);
  assert.throws(() => {
    parser.push('data: ');
    for (let i = 0; i < 17; i++) parser.push(block);
  }, /too long/);
});

test('parser: the data of one event longer than the bound is refused, even in short lines', () => {
  // Each line is short; without an empty line they all pile up in one event's data.
  const parser = createSSEParser(() => {});
  const line = 'data: ' + 'x'.repeat(1024 * 1024) + '\n';
  assert.throws(() => {
    for (let i = 0; i < 17; i++) parser.push(line);
  }, /too long/);
});
