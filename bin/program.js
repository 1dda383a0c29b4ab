// The Pulumi program's entry (package.json "main"; Pulumi.yaml runs it without TypeScript): the
// compiled index.ts from dist/, or the sources when they are newer (bin/launch.js).
"use strict";
module.exports = require(require("./launch").entry("index"));
