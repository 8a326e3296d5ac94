// Preloaded into every Node process of the lab VM (NODE_OPTIONS=--import=<this file>, set by lab.ts), before the
// program's own modules load.
//
// Node 24's V8 (13.6) aborted twice in the emulated VM with "Check failed: it->second.Size() > offset" in
// WebAssembly tier-up (Runtime_WasmTriggerTierUp → StackFrameIterator → Heap::GcSafeFindCodeForInnerPointer: a
// return address on a JIT page that V8's page registry does not know; the same registry fails under wasm code
// churn in nodejs/node#64500). Once it killed an agent 3 s after its start, once a test lab's realserver agent.
// The WebAssembly in these processes is Node's own type stripping (amaro) and undici's HTTP parser (llhttp):
// without tier-up they run on Liftoff code only, and no wasm code is replaced and freed while frames use it.
// Both flags are needed (with dynamic tiering off alone V8 compiles every function with TurboFan, eagerly), and
// neither is allowed in NODE_OPTIONS itself, hence a preload.
import v8 from 'node:v8';

v8.setFlagsFromString('--no-wasm-tier-up');
v8.setFlagsFromString('--no-wasm-dynamic-tiering');
