// Vitest reporter that ends the run with the plain line CI reads: `dashboard: N passed, N failed`.
// Used beside the default reporter (see package.json), which still prints the details.

export default class PlainSummaryReporter {
  onTestRunEnd(testModules, unhandledErrors = []) {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed += 1;
        else if (state === "failed") failed += 1;
        else skipped += 1;
      }
      // A file that failed to load has no tests to count but must still fail the run.
      if (module.state() === "failed" && [...module.children.allTests()].length === 0) failed += 1;
    }
    failed += unhandledErrors.length;
    const tail = skipped > 0 ? `, ${skipped} skipped` : "";
    process.stdout.write(`dashboard: ${passed} passed, ${failed} failed${tail}\n`);
  }
}
