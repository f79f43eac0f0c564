// A stand-in broker process for the spare SIGKILL test: starts a pool from the built code (dist/)
// whose profile keeps spares, prints "ready <names>" once they are up, then waits to be killed.
import { WorkerPool } from "../../../dist/pool/pool.js";
import { DockerRuntime } from "../../../dist/runtime/docker.js";

const { config, labels, spares } = JSON.parse(process.argv[2]);
const pool = new WorkerPool({ config, docker: new DockerRuntime(), extraLabels: labels });
await pool.start();
const timer = setInterval(() => {
  const ready = pool.stats().containers.filter((c) => c.spare && c.state === "ready");
  if (ready.length >= spares) {
    console.log(`ready ${ready.map((c) => c.name).join(" ")}`);
    clearInterval(timer);
    setInterval(() => {}, 1000);
  }
}, 100);
