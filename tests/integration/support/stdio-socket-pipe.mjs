// A stdio server, as a client in a container spawns it, that is really a unix socket: stdin goes
// to the socket, the socket to stdout. The host end of the socket (stdio-socket.ts) spawns the
// broker with `serve --transport stdio` for each connection, so the client's bytes reach the
// broker's stdin and its stdout unchanged, as if the client had spawned it.
//   usage: node stdio-socket-pipe.mjs <socket path>
import net from "node:net";

const socket = net.connect(process.argv[2]);
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on("error", (e) => {
  process.stderr.write(`stdio-socket-pipe: ${e.message}\n`);
  process.exit(1);
});
socket.on("close", () => process.exit(0));
