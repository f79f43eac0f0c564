// A stand-in broker process for the SIGKILL test: starts a pool from the built code (dist/),
// begins a long turn, prints "assigned <container>" once it has a container, then waits to be killed.
import { WorkerPool } from "../../../dist/pool/pool.js";
import { DockerRuntime } from "../../../dist/runtime/docker.js";

const { config, labels, workspace } = JSON.parse(process.argv[2]);
const pool = new WorkerPool({ config, docker: new DockerRuntime(), extraLabels: labels });
await pool.start();
void pool.runTurn({ workspace, prompt: "#fake sleep 60000", onAssigned: (a) => console.log(`assigned ${a.container}`) });
setInterval(() => {}, 1000);
