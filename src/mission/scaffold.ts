// `scaffold-mission`: a starter mission that validates as written and explains each field.

/** The starter mission, as commented YAML. */
export function scaffoldMission(): string {
  return `# A codex-mcp-wrapper mission: tasks that Codex workers run, each in a container.
# Run it:   codex-mcp-wrapper run-mission mission.yaml --workspace .
# Rehearse it offline (no API key, no cost): use the rehearsal worker image, whose model
# follows "#fake …" lines in a prompt (docs/rehearsal.md).

# A name for the mission (shown in reports).
name: starter-mission

# Where the tasks work: a directory under broker.allowed_workspace_roots, bind-mounted into
# each worker at /workspace. --workspace (or batch's workspace argument) overrides it.
# workspace: .

# Settings for every task; a task's own settings win, then its worker profile's.
defaults:
  # read-only | workspace-write | danger-full-access (enforced by the container)
  sandbox: workspace-write
  # never | on-request | untrusted: an approval Codex asks for goes to the MCP client that started
  # the mission if it declared elicitation (app-server workers), else it is declined
  approval_policy: never
  # A turn that runs longer is interrupted and marked timed_out: "90s", "10m", or seconds.
  timeout: 10m
  # Files to keep as artifacts: globs relative to the workspace (never "..", never absolute).
  artifacts:
    - "reports/**"

tasks:
  - # A unique id: letters, digits, ".", "-", "_".
    id: summarize
    # What Codex is asked to do.
    prompt: |
      Summarize the repository's README into reports/summary.md.
    # Optional, per task:
    # profile: default              # a [[workers]] profile of wrapper.toml
    # preferred_worker: default     # a profile to use when it has free capacity
    # model: gpt-5.1-codex          # the model Codex uses
    # base-instructions: "…"        # replaces Codex's own instructions
    # developer-instructions: "…"   # added as a developer message
    # env: { CI: "true" }           # variables for the commands Codex runs
    # config: { model_reasoning_effort: "low" }   # Codex config overrides
    # artifacts: ["dist/**"]        # replaces the defaults' list
    # timeout: 5m

  - id: check
    prompt: |
      List the TODO comments in the source tree into reports/todo.md.
    sandbox: workspace-write
`;
}
