// A scripted stand-in for the simulator that misbehaves on purpose: it answers the handshake (or not), then
// lets the test decide what, if anything, to say to each frame. For tests of what a client does when the
// other side does not behave like Filter Manager: never answers, stops reading, sends impossible completions.
import * as net from 'node:net';
import {
  FrameDecoder,
  FrameType,
  encodeFrame,
  encodeGetComplete,
  encodeI32,
  type Frame,
} from '../../lib/simulator/wire';

export interface FakePeer {
  /** A tcp: endpoint for FilterPort.connect({ simulator }) (TCP loopback: the same on POSIX and Windows). */
  endpoint: string;
  /** Every frame clients sent after their CONNECT, in order. */
  readonly frames: Frame[];
  /** The accepted streams, in order. */
  readonly sockets: net.Socket[];
  /** CONNECT frames received (answered or not). */
  readonly connects: number;
  /** Called for each frame after CONNECT; the default answers nothing. */
  onFrame: (frame: Frame, socket: net.Socket) => void;
  /** Answers a GET with a GET_COMPLETE. */
  complete(
    socket: net.Socket,
    getId: number,
    message: { status?: number; replyLength?: number; id?: bigint; data?: Buffer },
  ): void;
  close(): Promise<void>;
}

export interface FakePeerOptions {
  /** What to write instead of CONNECT_RESULT(S_OK); 'never': no answer (a ConnectNotify that never returns). */
  handshake?: Buffer | 'never';
}

export async function startFakePeer(options: FakePeerOptions = {}): Promise<FakePeer> {
  const sockets: net.Socket[] = [];
  const frames: Frame[] = [];
  let connects = 0;
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    const decoder = new FrameDecoder('client-to-server');
    let connected = false;
    socket.on('data', (chunk) => {
      let received: Frame[];
      try {
        received = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const frame of received) {
        if (!connected && frame.type === FrameType.CONNECT) {
          connected = true;
          connects++;
          if (options.handshake !== 'never') {
            socket.write(options.handshake ?? encodeFrame(FrameType.CONNECT_RESULT, frame.id, encodeI32(0)));
          }
          continue;
        }
        frames.push(frame);
        peer.onFrame(frame, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const peer: FakePeer = {
    // The secret is not checked: this peer lets anyone in.
    endpoint: `tcp:127.0.0.1:${(server.address() as net.AddressInfo).port}#fake`,
    frames,
    sockets,
    get connects() {
      return connects;
    },
    onFrame: () => undefined,
    complete(socket, getId, m) {
      const payload = encodeGetComplete({
        status: m.status ?? 0,
        replyLength: m.replyLength ?? 0,
        messageId: m.id ?? 1n,
        data: m.data ?? Buffer.alloc(0),
      });
      socket.write(encodeFrame(FrameType.GET_COMPLETE, getId, payload));
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return peer;
}
