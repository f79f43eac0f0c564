// Runs once before the integration tests: the Docker engine must answer and the rehearsal
// images must be built (`npm test` builds them). Afterwards: no container or volume with the
// test label may be left behind, whatever happened.
import { execFileSync } from "node:child_process";
import { REHEARSAL_IMAGE, REHEARSAL_IMAGE_LEGACY, removeTestContainers, removeTestInstances, removeTestVolumes } from "./support/env.js";

export function setup(): void {
  try {
    execFileSync("docker", ["info"], { stdio: "ignore" });
  } catch {
    throw new Error("The Docker engine does not answer: run scripts/ensure-docker.sh (npm test does it for you)");
  }
  for (const image of [REHEARSAL_IMAGE, REHEARSAL_IMAGE_LEGACY]) {
    try {
      execFileSync("docker", ["image", "inspect", image], { stdio: "ignore" });
    } catch {
      throw new Error(`Image ${image} is missing: run npm run images (npm test does it for you)`);
    }
  }
  sweep();
}

/**
 * Removes what earlier runs left behind. CMW_NO_SWEEP=1 skips it, for a second run sharing the
 * engine (a helper running one file while another suite is under way).
 */
function sweep(): void {
  if (process.env.CMW_NO_SWEEP === "1") return;
  removeTestContainers();
  removeTestInstances();
  removeTestVolumes();
}

export function teardown(): void {
  sweep();
}
