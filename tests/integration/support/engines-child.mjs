// A stand-in broker process for the engines' SIGKILL test: starts a pool from the built code
// (dist/) whose warm floor puts a container on each engine, prints "ready [engines…]" once they
// all answer, then waits to be killed.
import { WorkerPool } from "../../../dist/pool/pool.js";
import { DockerRuntime } from "../../../dist/runtime/docker.js";

const { config, labels } = JSON.parse(process.argv[2]);
const pool = new WorkerPool({ config, docker: new DockerRuntime(), extraLabels: labels, healthIntervalMs: 1000 });
await pool.start();
const want = config.workers[0].warm * config.workers[0].warm_workspaces.length;
const timer = setInterval(() => {
  const ready = pool.stats().containers.filter((c) => c.state === "ready");
  if (ready.length < want) return;
  console.log(`ready ${JSON.stringify(ready.map((c) => c.engine))}`);
  clearInterval(timer);
  setInterval(() => {}, 1000);
}, 200);
