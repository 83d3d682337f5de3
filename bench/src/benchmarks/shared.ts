/** The Flux release the benchmarks generate manifests for (the engine's tested default). */
export const BENCH_FLUX_VERSION = 'v2.9.4';
/** Flux's real CRDs are ~100–300 KB each; the fixture's are padded to this size. */
export const CRD_PAD_BYTES = 200_000;
