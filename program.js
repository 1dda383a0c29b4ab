// The Pulumi program's entry (Pulumi.yaml "main"; run without TypeScript): the compiled index.ts
// from dist/, or the sources when one is newer than that build (bin/launch.js). It sits at the
// project root because Pulumi runs the program in the directory of its entry point.
"use strict";
module.exports = require(require("./bin/launch").programEntry());
