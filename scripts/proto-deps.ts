/**
 * Writes the protos that `proto/` imports but does not own into `<out-dir>`
 * (the `proto-deps` buf module, committed), so that `buf` works without the buf
 * schema registry (unreachable here) and protoc users need nothing but the
 * repository:
 *
 * - `buf/validate/validate.proto` is printed from the descriptor embedded in
 *   `@bufbuild/protovalidate`, so our rules compile against exactly what the
 *   runtime validator understands. The printed file is compiled back with
 *   `buf build` and compared with the embedded descriptor; any difference
 *   stops the build.
 * - `google/rpc/{status,error_details}.proto` come from `google-proto-files`;
 *   `grpc/health/v1` and `grpc/reflection/{v1,v1alpha}` from the packages that
 *   serve them, so server reflection can describe them too.
 *
 * Usage: tsx scripts/proto-deps.ts <out-dir>
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  createFileRegistry,
  createRegistry,
  type DescExtension,
  type DescField,
  type DescFile,
  type DescMessage,
  fromBinary,
  getExtension,
  isFieldSet,
  type Message,
  type Registry,
  toJson,
} from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

/** Message fields and extensions print alike. */
type FieldLike = DescField | DescExtension;

const scalarNames: Partial<Record<FieldDescriptorProto_Type, string>> = {
  [FieldDescriptorProto_Type.DOUBLE]: "double",
  [FieldDescriptorProto_Type.FLOAT]: "float",
  [FieldDescriptorProto_Type.INT64]: "int64",
  [FieldDescriptorProto_Type.UINT64]: "uint64",
  [FieldDescriptorProto_Type.INT32]: "int32",
  [FieldDescriptorProto_Type.FIXED64]: "fixed64",
  [FieldDescriptorProto_Type.FIXED32]: "fixed32",
  [FieldDescriptorProto_Type.BOOL]: "bool",
  [FieldDescriptorProto_Type.STRING]: "string",
  [FieldDescriptorProto_Type.BYTES]: "bytes",
  [FieldDescriptorProto_Type.UINT32]: "uint32",
  [FieldDescriptorProto_Type.SFIXED32]: "sfixed32",
  [FieldDescriptorProto_Type.SFIXED64]: "sfixed64",
  [FieldDescriptorProto_Type.SINT32]: "sint32",
  [FieldDescriptorProto_Type.SINT64]: "sint64",
};

/** A protobuf string literal; escapes everything that is not printable ASCII. */
function quote(value: string | Uint8Array): string {
  const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
  let out = '"';
  for (const b of bytes) {
    if (b === 0x22) out += '\\"';
    else if (b === 0x5c) out += "\\\\";
    else if (b === 0x0a) out += "\\n";
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\${b.toString(8).padStart(3, "0")}`;
  }
  return `${out}"`;
}

function scalarText(field: FieldLike, value: unknown): string {
  if (field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum")) {
    const number = value as number;
    const found = field.enum?.values.find((v) => v.number === number);
    return found ? found.name : String(number);
  }
  if (typeof value === "string" || value instanceof Uint8Array) return quote(value);
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "nan";
    if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
  }
  return String(value);
}

/** Text format of a message, as used in option values (`{ a: 1 b: [...] }`). */
function messageText(desc: DescMessage, message: Message): string {
  const parts: string[] = [];
  const record = message as unknown as Record<string, unknown>;
  for (const field of desc.fields) {
    if (!isFieldSet(message, field)) continue;
    let value: unknown;
    if (field.oneof) {
      value = (record[field.oneof.localName] as { value: unknown }).value;
    } else {
      value = record[field.localName];
    }
    parts.push(`${field.name}: ${fieldValueText(field, value)}`);
  }
  return parts.length === 0 ? "{}" : `{ ${parts.join(" ")} }`;
}

function fieldValueText(field: FieldLike, value: unknown): string {
  switch (field.fieldKind) {
    case "message":
      return messageText(field.message, value as Message);
    case "list": {
      const items = (value as unknown[]).map((item) =>
        field.listKind === "message" ? messageText(field.message, item as Message) : scalarText(field, item),
      );
      return `[${items.join(", ")}]`;
    }
    case "map":
      throw new Error(`map option values are not supported (${field.toString()})`);
    default:
      return scalarText(field, value);
  }
}

/**
 * The options set on an element: standard fields by name, extensions (still
 * unknown fields in the embedded descriptor) decoded through the registry.
 */
function optionList(options: Message | undefined, registry: Registry): string[] {
  if (!options) return [];
  const desc = registry.getMessage(options.$typeName);
  if (!desc) throw new Error(`unknown options type ${options.$typeName}`);
  const out: string[] = [];
  const record = options as unknown as Record<string, unknown>;
  for (const field of desc.fields) {
    if (field.name === "uninterpreted_option" || !isFieldSet(options, field)) continue;
    if (field.name === "map_entry") continue;
    const value = record[field.localName];
    if (field.fieldKind === "list") {
      for (const item of value as unknown[]) out.push(`${field.name} = ${scalarText(field, item)}`);
    } else if (field.fieldKind === "message") {
      out.push(`${field.name} = ${messageText(field.message, value as Message)}`);
    } else {
      out.push(`${field.name} = ${scalarText(field, value)}`);
    }
  }
  const seen = new Set<number>();
  for (const unknown of (options as { $unknown?: { no: number }[] }).$unknown ?? []) {
    if (seen.has(unknown.no)) continue;
    seen.add(unknown.no);
    const ext: DescExtension | undefined = registry.getExtensionFor(desc, unknown.no);
    if (!ext) throw new Error(`option ${unknown.no} on ${desc.typeName} has no known extension`);
    const value: unknown = getExtension(options, ext);
    if (ext.fieldKind === "list") {
      for (const item of value as unknown[]) {
        const text = ext.listKind === "message" ? messageText(ext.message, item as Message) : scalarText(ext, item);
        out.push(`(.${ext.typeName}) = ${text}`);
      }
    } else {
      out.push(`(.${ext.typeName}) = ${fieldValueText(ext, value)}`);
    }
  }
  return out;
}

function oneofOf(field: FieldDescriptorProto): number | undefined {
  return isFieldSet(field, FieldDescriptorProtoSchema.field.oneofIndex) ? field.oneofIndex : undefined;
}

function defaultJsonName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()).replace(/_/g, "");
}

class Printer {
  private lines: string[] = [];
  constructor(
    private readonly file: FileDescriptorProto,
    private readonly registry: Registry,
  ) {}

  private emit(indent: number, text: string): void {
    this.lines.push(`${"  ".repeat(indent)}${text}`);
  }

  print(): string {
    const f = this.file;
    if (f.edition) throw new Error("editions are not supported by this printer");
    const syntax = f.syntax || "proto2";
    this.emit(0, "// Derived from the descriptor embedded in @bufbuild/protovalidate. Do not edit.");
    this.emit(0, `syntax = ${quote(syntax)};`);
    this.emit(0, "");
    if (f.package) this.emit(0, `package ${f.package};`);
    f.dependency.forEach((dep, i) => {
      const kind = f.publicDependency.includes(i) ? "public " : f.weakDependency.includes(i) ? "weak " : "";
      this.emit(0, `import ${kind}${quote(dep)};`);
    });
    for (const option of optionList(f.options, this.registry)) this.emit(0, `option ${option};`);
    for (const message of f.messageType) this.message(0, message, syntax);
    for (const en of f.enumType) this.enumType(0, en);
    this.extensions(0, f.extension, syntax);
    return `${this.lines.join("\n")}\n`;
  }

  private message(indent: number, m: DescriptorProto, syntax: string): void {
    this.emit(indent, `message ${m.name} {`);
    const inner = indent + 1;
    for (const option of optionList(m.options, this.registry)) this.emit(inner, `option ${option};`);
    const mapEntries = new Map(m.nestedType.filter((n) => n.options?.mapEntry).map((n) => [n.name, n]));
    const realOneofs = new Set(m.field.filter((fd) => oneofOf(fd) !== undefined && !fd.proto3Optional).map(oneofOf));
    let openOneof: number | undefined;
    for (const field of m.field) {
      const index = oneofOf(field);
      const inOneof = index !== undefined && realOneofs.has(index) ? index : undefined;
      if (openOneof !== undefined && inOneof !== openOneof) {
        this.emit(inner, "}");
        openOneof = undefined;
      }
      if (inOneof !== undefined && inOneof !== openOneof) {
        const decl = m.oneofDecl[inOneof];
        if (!decl) throw new Error(`missing oneof ${inOneof} in ${m.name}`);
        this.emit(inner, `oneof ${decl.name} {`);
        for (const option of optionList(decl.options, this.registry)) this.emit(inner + 1, `option ${option};`);
        openOneof = inOneof;
      }
      this.emit(
        openOneof === undefined ? inner : inner + 1,
        this.field(field, syntax, mapEntries, openOneof !== undefined),
      );
    }
    if (openOneof !== undefined) this.emit(inner, "}");
    for (const nested of m.nestedType) if (!mapEntries.has(nested.name)) this.message(inner, nested, syntax);
    for (const en of m.enumType) this.enumType(inner, en);
    this.extensions(inner, m.extension, syntax);
    for (const range of m.extensionRange) {
      const end = range.end === 536870912 ? "max" : String(range.end - 1);
      this.emit(inner, `extensions ${range.start === range.end - 1 ? range.start : `${range.start} to ${end}`};`);
    }
    this.reserved(inner, m.reservedRange, m.reservedName, 536870912);
    this.emit(indent, "}");
  }

  private reserved(indent: number, ranges: { start: number; end: number }[], names: string[], max: number): void {
    for (const r of ranges) {
      const end = r.end === max ? "max" : String(r.end - 1);
      this.emit(indent, `reserved ${r.start === r.end - 1 ? r.start : `${r.start} to ${end}`};`);
    }
    for (const name of names) this.emit(indent, `reserved ${quote(name)};`);
  }

  private typeOf(field: FieldDescriptorProto): string {
    if (field.type === FieldDescriptorProto_Type.MESSAGE || field.type === FieldDescriptorProto_Type.ENUM) {
      return field.typeName;
    }
    const name = scalarNames[field.type];
    if (!name) throw new Error(`unsupported field type ${field.type} on ${field.name}`);
    return name;
  }

  private field(
    field: FieldDescriptorProto,
    syntax: string,
    mapEntries: Map<string, DescriptorProto>,
    inOneof: boolean,
  ): string {
    const entryName = field.typeName.split(".").pop() ?? "";
    const entry = field.label === FieldDescriptorProto_Label.REPEATED ? mapEntries.get(entryName) : undefined;
    let head: string;
    if (entry) {
      const [key, value] = entry.field;
      if (!key || !value) throw new Error(`malformed map entry ${entry.name}`);
      head = `map<${this.typeOf(key)}, ${this.typeOf(value)}>`;
    } else {
      let label = "";
      if (field.label === FieldDescriptorProto_Label.REPEATED) label = "repeated ";
      else if (field.label === FieldDescriptorProto_Label.REQUIRED) label = "required ";
      else if (!inOneof && (syntax === "proto2" || field.proto3Optional)) label = "optional ";
      head = `${label}${this.typeOf(field)}`;
    }
    const options: string[] = [];
    if (isFieldSet(field, FieldDescriptorProtoSchema.field.defaultValue)) {
      const isText = field.type === FieldDescriptorProto_Type.STRING || field.type === FieldDescriptorProto_Type.BYTES;
      options.push(`default = ${isText ? quote(field.defaultValue) : field.defaultValue}`);
    }
    if (
      isFieldSet(field, FieldDescriptorProtoSchema.field.jsonName) &&
      field.jsonName !== defaultJsonName(field.name)
    ) {
      options.push(`json_name = ${quote(field.jsonName)}`);
    }
    options.push(...optionList(field.options, this.registry));
    const suffix = options.length > 0 ? ` [\n${options.map((o) => `    ${o}`).join(",\n")}\n  ]` : "";
    return `${head} ${field.name} = ${field.number}${suffix};`;
  }

  private extensions(indent: number, fields: FieldDescriptorProto[], syntax: string): void {
    const byExtendee = new Map<string, FieldDescriptorProto[]>();
    for (const field of fields) {
      byExtendee.set(field.extendee, [...(byExtendee.get(field.extendee) ?? []), field]);
    }
    for (const [extendee, group] of byExtendee) {
      this.emit(indent, `extend ${extendee} {`);
      for (const field of group) this.emit(indent + 1, this.field(field, syntax, new Map(), false));
      this.emit(indent, "}");
    }
  }

  private enumType(indent: number, en: EnumDescriptorProto): void {
    this.emit(indent, `enum ${en.name} {`);
    for (const option of optionList(en.options, this.registry)) this.emit(indent + 1, `option ${option};`);
    for (const value of en.value) {
      const options = optionList(value.options, this.registry);
      const suffix = options.length > 0 ? ` [${options.join(", ")}]` : "";
      this.emit(indent + 1, `${value.name} = ${value.number}${suffix};`);
    }
    this.reserved(
      indent + 1,
      en.reservedRange.map((r) => ({ start: r.start, end: r.end + 1 })),
      en.reservedName,
      2147483648,
    );
    this.emit(indent, "}");
  }
}

/** JSON of a file descriptor with options decoded, for comparing two builds. */
function canonical(file: FileDescriptorProto, registry: Registry): unknown {
  const json = toJson(FileDescriptorProtoSchema, file, { registry }) as Record<string, unknown>;
  delete json.sourceCodeInfo;
  return JSON.parse(JSON.stringify(json, (key, value) => (key === "jsonName" ? undefined : value)));
}

function deriveProto(file: DescFile): string {
  return new Printer(file.proto, createRegistry(file, ...allDependencies(file))).print();
}

function allDependencies(file: DescFile): DescFile[] {
  return file.dependencies.flatMap((dep) => [dep, ...allDependencies(dep)]);
}

/** Compiles the printed file with buf and checks it describes the same schema. */
function verify(outDir: string, file: DescFile): void {
  const work = mkdtempSync(join(tmpdir(), "protovalidate-"));
  try {
    const image = join(work, "image.binpb");
    execFileSync("npx", ["buf", "build", outDir, "--exclude-source-info", "-o", image], { stdio: "inherit" });
    const set = fromBinary(FileDescriptorSetSchema, readFileSync(image));
    const built = set.file.find((f) => f.name === file.proto.name);
    if (!built) throw new Error(`${file.name} missing from the buf image`);
    const registry = createFileRegistry(set);
    const a = JSON.stringify(canonical(file.proto, registry));
    const b = JSON.stringify(canonical(built, registry));
    if (a !== b) {
      throw new Error(`printed ${file.name} does not compile back to the embedded descriptor`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const outDir = process.argv[2];
if (!outDir) {
  console.error("usage: proto-deps.ts <out-dir>");
  process.exit(2);
}
const target = join(outDir, file_buf_validate_validate.proto.name);
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, deriveProto(file_buf_validate_validate));
verify(outDir, file_buf_validate_validate);
console.log(`wrote ${target} (verified against the embedded descriptor)`);

const packageDir = (name: string) => dirname(createRequire(import.meta.url).resolve(`${name}/package.json`));
const copies: [from: string, to: string][] = [
  [join(packageDir("google-proto-files"), "google/rpc/status.proto"), "google/rpc/status.proto"],
  [join(packageDir("google-proto-files"), "google/rpc/error_details.proto"), "google/rpc/error_details.proto"],
  [join(packageDir("grpc-health-check"), "proto/health/v1/health.proto"), "grpc/health/v1/health.proto"],
  [
    join(packageDir("@grpc/reflection"), "build/proto/grpc/reflection/v1/reflection.proto"),
    "grpc/reflection/v1/reflection.proto",
  ],
  [
    join(packageDir("@grpc/reflection"), "build/proto/grpc/reflection/v1alpha/reflection.proto"),
    "grpc/reflection/v1alpha/reflection.proto",
  ],
];
for (const [from, to] of copies) {
  mkdirSync(dirname(join(outDir, to)), { recursive: true });
  copyFileSync(from, join(outDir, to));
  console.log(`wrote ${join(outDir, to)}`);
}
