// The judge of the Atlas's JavaScript/TypeScript extraction: what the TypeScript compiler sees in each
// file — the declarations the Atlas indexes (by name and kind), every module specifier, and the file
// each relative specifier resolves to (ts.resolveModuleName, bundler resolution).
// Reads {"root": dir, "paths": [relative paths]} on stdin, writes {path: facts} on stdout.
"use strict";
const fs = require("fs");
const ts = require("typescript");

const KIND_ORDER = ["class", "function", "enum", "interface", "type", "constant"];

function nameOf(node) {
  if (!node.name) return null;
  if (ts.isIdentifier(node.name) || ts.isPrivateIdentifier(node.name)) return node.name.text;
  if (ts.isStringLiteral(node.name) || ts.isNumericLiteral(node.name)) return node.name.text;
  return null; // computed names ([Symbol.iterator]) are not indexed
}

function hasModifier(node, kind) {
  return (ts.canHaveModifiers(node) && (ts.getModifiers(node) || []).some((m) => m.kind === kind)) || false;
}

function isUpperCase(name) {
  return name.toUpperCase() === name && name.toLowerCase() !== name;
}

function scriptKind(path) {
  if (path.endsWith(".tsx")) return ts.ScriptKind.TSX;
  if (/\.(c|m)?ts$/.test(path)) return ts.ScriptKind.TS;
  if (path.endsWith(".jsx")) return ts.ScriptKind.JSX;
  return ts.ScriptKind.JS;
}

const OPTIONS = {
  allowJs: true, checkJs: false, resolveJsonModule: true, jsx: ts.JsxEmit.Preserve,
  module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, noEmit: true,
};

function factsOf(root, relative) {
  const path = require("path").join(root, relative);
  const text = fs.readFileSync(path, "utf8");
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, scriptKind(path));
  const symbols = new Map(); // name -> kind (one concept per name)
  const specifiers = new Set();
  const exportedLater = new Set();
  const constants = new Map(); // name -> exported by declaration

  function add(name, kind) {
    const before = symbols.get(name);
    if (before === undefined || KIND_ORDER.indexOf(kind) < KIND_ORDER.indexOf(before)) symbols.set(name, kind);
  }

  function members(className, node) {
    for (const member of node.members) {
      if (ts.isConstructorDeclaration(member)) add(`${className}.constructor`, "method");
      else if (ts.isMethodDeclaration(member) || ts.isGetAccessorDeclaration(member) || ts.isSetAccessorDeclaration(member)) {
        const name = nameOf(member);
        if (name !== null) add(`${className}.${name}`, "method");
      }
    }
  }

  for (const statement of source.statements) {
    const exported = hasModifier(statement, ts.SyntaxKind.ExportKeyword);
    if (ts.isFunctionDeclaration(statement)) {
      add(nameOf(statement) || "default", "function");
    } else if (ts.isClassDeclaration(statement)) {
      const name = nameOf(statement) || "default";
      add(name, "class");
      members(name, statement);
    } else if (ts.isInterfaceDeclaration(statement)) {
      add(nameOf(statement), "interface");
    } else if (ts.isTypeAliasDeclaration(statement)) {
      add(nameOf(statement), "type");
    } else if (ts.isEnumDeclaration(statement)) {
      add(nameOf(statement), "enum");
    } else if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) {
        if (!ts.isIdentifier(declaration.name)) continue; // destructuring
        const name = declaration.name.text;
        let init = declaration.initializer;
        while (init && (ts.isParenthesizedExpression(init) || ts.isAsExpression(init) || ts.isSatisfiesExpression(init))) init = init.expression;
        if (init && (ts.isArrowFunction(init) || ts.isFunctionExpression(init))) add(name, "function");
        else if (init && ts.isClassExpression(init)) {
          add(name, "class");
          members(name, init);
        } else constants.set(name, exported || constants.get(name) || false);
      }
    } else if (ts.isExportDeclaration(statement) && !statement.moduleSpecifier && statement.exportClause && ts.isNamedExports(statement.exportClause)) {
      for (const element of statement.exportClause.elements) exportedLater.add((element.propertyName || element.name).text);
    } else if (ts.isExportAssignment(statement) && ts.isIdentifier(statement.expression)) {
      exportedLater.add(statement.expression.text);
    }
  }
  for (const [name, exported] of constants) {
    if (exported || exportedLater.has(name) || isUpperCase(name)) add(name, "constant");
  }

  (function visit(node) {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      specifiers.add(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)
               && ts.isStringLiteral(node.moduleReference.expression)) {
      specifiers.add(node.moduleReference.expression.text);
    } else if (ts.isCallExpression(node) && node.arguments.length >= 1 && ts.isStringLiteralLike(node.arguments[0])
               && (node.expression.kind === ts.SyntaxKind.ImportKeyword
                   || (ts.isIdentifier(node.expression) && node.expression.text === "require"))) {
      specifiers.add(node.arguments[0].text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      specifiers.add(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  })(source);

  const resolved = {};
  for (const specifier of specifiers) {
    if (!specifier.startsWith(".")) continue;
    const found = ts.resolveModuleName(specifier, path, OPTIONS, ts.sys).resolvedModule;
    if (!found) continue;
    let file = found.resolvedFileName;
    // For types, the compiler stops at a declaration file; the module that runs is the script beside it.
    const script = file.replace(/\.d\.(c|m)?ts$/, (_, k) => `.${k || ""}js`);
    if (script !== file && fs.existsSync(script)) file = script;
    resolved[specifier] = require("path").relative(root, file);
  }
  return {
    symbols: [...symbols].map(([name, kind]) => ({ name, kind })),
    specifiers: [...specifiers],
    resolved,
    parse_errors: source.parseDiagnostics.length,
  };
}

const request = JSON.parse(fs.readFileSync(0, "utf8"));
const out = {};
for (const relative of request.paths) out[relative] = factsOf(request.root, relative);
process.stdout.write(JSON.stringify(out));
