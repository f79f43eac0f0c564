// A task id: it names files and folders under the state directory, so the store owns its shape.

/** Ids become file names under the state directory: no path characters. */
export const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
