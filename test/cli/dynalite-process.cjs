// dynalite in a child process for the CLI tests (test/cli/support.ts `startDynamo`): seeding
// thousands of runs and answering the CLI's Queries then use both cores, the emulator's work here
// and the SDK's in the test. While recording, every request's X-Amz-Target operation and JSON body
// are sent to the parent, so the tests see what reached "DynamoDB" whichever client sent it (the
// tests' own writer marks its requests with an x-test-writer header).
const { Buffer } = require('node:buffer');
const dynalite = require('dynalite');

const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
let recording = false;

// Registered first: dynalite's own handler reads the body with 'data' events in the same tick, so
// both listeners see every chunk, and this one reports a request before dynalite answers it.
server.prependListener('request', (req) => {
  if (!recording) return;
  const target = String(req.headers['x-amz-target'] || '(none)');
  const writer = req.headers['x-test-writer'] === '1';
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let input = {};
    try {
      input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      // Not JSON: the operation is what matters.
    }
    process.send({ type: 'request', operation: target.slice(target.lastIndexOf('.') + 1), input, writer });
  });
});

// Messages on the IPC channel stay in order: answering `sync` after the requests reported so far
// lets the parent know it has them all.
process.on('message', (message) => {
  if (message.type === 'record') recording = message.on;
  if (message.type === 'sync' || message.type === 'record') process.send({ type: 'synced', id: message.id });
});
process.on('disconnect', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});

server.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: server.address().port }));
