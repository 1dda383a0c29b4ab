// The nixos resource provider (bin/pulumi-resource-nixos starts it): src/provider/main.ts,
// compiled or from the sources (bin/launch.js).
"use strict";
require(require("./launch").entry("src/provider/main"));
