// The operator commands (scripts/cli: npm run deploy|rollback|generations): src/cli/main.ts,
// compiled or from the sources (bin/launch.js).
"use strict";
const launch = require("./launch");
// Said on stderr (a --json report stays alone on stdout).
const notice = launch.staleBuildNotice();
if (notice) process.stderr.write(notice);
require(launch.entry("src/cli/main"));
