// A process that saves the tiny model to argv[2] over and over (merged_16bit, many small shards), for
// the test that kills saves with SIGKILL at random points. Prints "ready" once the model is loaded
// and "saved" after each completed save. Node 20's runner executes every .js file under a test
// directory, so without TSLOTH_SAVE_CHILD (set by atomic.test.ts) this file does nothing.
import { saveMerged } from "../../lib/save/index.js";
import { trainedTinyModel } from "./save-fixtures.js";

const dir = process.argv[2];
if (process.env.TSLOTH_SAVE_CHILD === "1" && dir) {
  const model = await trainedTinyModel({ loadIn4bit: false, seed: Number(process.argv[3] ?? 1) });
  process.stdout.write("ready\n");
  for (;;) {
    await saveMerged(model, { dir, maxShardSize: "24KB", physicalCpus: 2 });
    process.stdout.write("saved\n");
  }
}
