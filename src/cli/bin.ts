#!/usr/bin/env node
// The executable: runs the command line and sets the exit code.
import { main } from "./main.js";

process.exitCode = await main(process.argv.slice(2));
// A command that is done exits, even if something it used is still open (an engine call that
// never answered, a keep-alive connection): a process left running after its work and its
// shutdown is worse than one cut short. Unreferenced, so a process with nothing open exits at
// once, as before.
setTimeout(() => process.exit(), 2_000).unref();
