// Runs inside the emulated Node (arm64 under qemu-user, x86 node.exe under Wine): loads the addon the way an
// installed package does (node-gyp-build, PREBUILDS_ONLY=1: prebuilds/<platform>-<arch>/ only), connects to
// the simulator in the host's x64 node (FLTMGR_SIMULATOR, TCP 127.0.0.1 with the run's secret), sends one
// message, receives one and replies. Writes what it saw as JSON to argv[3] (Wine's node.exe cannot write to a
// pipe); any failure is recorded there and gives exit status 1. Plain CommonJS over dist/: no tsx here.
'use strict';
const fs = require('fs');
const path = require('path');

const [distLib, resultFile] = process.argv.slice(2);
const result = { node: process.version, platform: process.platform, arch: process.arch };
const write = () => fs.writeFileSync(resultFile, JSON.stringify(result, null, 2));

async function main() {
  const { FilterPort } = require(path.resolve(distLib));
  const port = await FilterPort.connect('\\SmokePort', { simulator: true, context: Buffer.from('smoke-context') });
  try {
    // user -> kernel: the port's MessageNotify upper-cases its input.
    result.sendOutput = (await port.send(Buffer.from('ping'), { outputSize: 16 })).toString('utf8');
    // kernel -> user: the host's FltSendMessage; the reply is the data reversed.
    for await (const message of port.messages({ concurrency: 1 })) {
      result.message = message.data.toString('utf8');
      await message.reply(Buffer.from([...result.message].reverse().join('')));
      break;
    }
  } finally {
    await port.close();
  }
  result.addons = Object.keys(require.cache).filter((k) => k.endsWith('.node'));
}

main().then(
  () => write(),
  (err) => {
    result.error = String((err && err.stack) || err);
    write();
    process.exitCode = 1;
  },
);
