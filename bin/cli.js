// The operator commands (scripts/cli: npm run deploy|rollback|generations): src/cli/main.ts,
// compiled or from the sources (bin/launch.js).
"use strict";
require(require("./launch").entry("src/cli/main"));
