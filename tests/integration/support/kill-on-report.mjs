// Preloaded into a child broker (`node --import`) by the restart test. When the mission runner
// reports the end of the task named by CMW_KILL_ON_REPORT (its task_finished progress event, what
// the MCP server turns into a progress notification and status reads), the process kills itself
// with SIGKILL in that same call: nothing the broker meant to write later (a timer, a queued
// write) can happen, so what is on disk is exactly what was written before the report.
import { MissionRunner } from "../../../dist/mission/runner.js";

const taskId = process.env.CMW_KILL_ON_REPORT;
const start = MissionRunner.prototype.start;
MissionRunner.prototype.start = function (mission, opts = {}) {
  const onProgress = opts.onProgress;
  return start.call(this, mission, {
    ...opts,
    onProgress: (e) => {
      if (e.kind === "task_finished" && e.taskId === taskId) process.kill(process.pid, "SIGKILL");
      onProgress?.(e);
    },
  });
};
