// Types for bench/report.mjs (a plain script of the bench), for the tests that import it.
export interface Summary { n: number; median: number; p10: number; p90: number; min: number; max: number; samples?: number[] }
export interface Measure { title: string; unit: string; series: [label: string, summary: Summary, role: string][]; note?: string }
export function latencyMeasures(results: Record<string, unknown>): Measure[];
export function renderSvg(results: Record<string, unknown>): string;
export function renderHtml(results: Record<string, unknown>): string;
