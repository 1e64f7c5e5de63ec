#!/usr/bin/env python3
"""Writes keg's protobuf schema table (crates/keg-apiserver/src/protobuf/schema.txt).

The table tells keg's API server how to turn a Kubernetes protobuf request body into the JSON
a client would have sent: per message, each field's number, JSON name, type, and whether a
zero value belongs in the JSON (Go writes zero pointers and fields without omitempty).

The source is the Go type metadata inside a kubectl binary (kubectl 1.33 by default): its
struct tags carry the protobuf numbers, JSON names and omitempty, its field types whether a
field is a pointer. kubectl links every GA group of k8s.io/api. With --check DIR, every field
is checked against k8s-pb's prost bindings (DIR = the crate's src), an independent source of
the numbers and wire types. Run: scripts/protobuf-schema.py [KUBECTL] [--check K8S_PB_SRC]
"""
import os, re, struct, subprocess, sys

SPECIAL = {  # Go struct -> table type whose JSON form is not the message's fields
    ('k8s.io/apimachinery/pkg/api/resource', 'Quantity'): 'Q',
    ('k8s.io/apimachinery/pkg/util/intstr', 'IntOrString'): 'IS',
    ('k8s.io/apimachinery/pkg/apis/meta/v1', 'Time'): 'T',
    ('k8s.io/apimachinery/pkg/apis/meta/v1', 'MicroTime'): 'MT',
    ('k8s.io/apimachinery/pkg/apis/meta/v1', 'Duration'): 'D',
    ('k8s.io/apimachinery/pkg/apis/meta/v1', 'FieldsV1'): 'F',
    ('k8s.io/apimachinery/pkg/runtime', 'RawExtension'): 'RE',
}
META = 'k8s.io/apimachinery/pkg/apis/meta/v1'
SCALAR = {1: 'b', 5: 'i', 6: 'i', 14: 'd', 24: 's'}  # Go kinds: bool, int32, int64, float64, string
K_MAP, K_PTR, K_SLICE, K_STRUCT, K_UINT8 = 21, 22, 23, 25, 8


class Binary:
    """A non-PIE Go ELF binary and its runtime type descriptors (Go 1.2x, 64-bit)."""

    def __init__(self, path):
        self.data = open(path, 'rb').read()
        shoff = struct.unpack_from('<Q', self.data, 0x28)[0]
        entsize, num, strndx = struct.unpack_from('<HHH', self.data, 0x3a)
        raw = [struct.unpack_from('<IIQQQQ', self.data, shoff + i * entsize) for i in range(num)]
        names = raw[strndx][4]
        self.sections = {}
        for name, typ, _, addr, off, size in raw:
            end = self.data.index(b'\0', names + name)
            self.sections[self.data[names + name:end].decode()] = (addr, off, size, typ)
        self.types = self.sections['.rodata'][0]

    def off(self, va):
        for addr, off, size, typ in self.sections.values():
            if typ != 8 and addr and addr <= va < addr + size:  # 8 = NOBITS
                return va - addr + off
        raise KeyError(hex(va))

    def u64(self, va): return struct.unpack_from('<Q', self.data, self.off(va))[0]
    def i32(self, va): return struct.unpack_from('<i', self.data, self.off(va))[0]
    def u8(self, va): return self.data[self.off(va)]
    def kind(self, t): return self.u8(t + 23) & 0x1f

    def name(self, va):
        o = self.off(va)
        flags, (n, o) = self.data[o], self.varint(o + 1)
        text, tag = self.data[o:o + n].decode(), ''
        if flags & 2:
            t, o2 = self.varint(o + n)
            tag = self.data[o2:o2 + t].decode()
        return text, tag

    def varint(self, o):
        v = s = 0
        while True:
            b = self.data[o]; o += 1; v |= (b & 0x7f) << s; s += 7
            if b < 0x80: return v, o

    def type_name(self, t):
        text, _ = self.name(self.types + self.i32(t + 40))
        return text[1:] if self.u8(t + 20) & 2 else text  # tflagExtraStar

    def struct_pkg(self, t):
        return self.name(self.types + self.i32(t + 80))[0] if self.u8(t + 20) & 1 else ''

    def elem(self, t, at=48): return self.u64(t + at)

    def fields(self, t):
        base, count = self.u64(t + 56), self.u64(t + 64)
        for i in range(count):
            name, tag = self.name(self.u64(base + i * 24))
            yield name, tag, self.u64(base + i * 24 + 8)

    def all_types(self):
        _, off, size, _ = self.sections['.typelink']
        stack = [self.types + o for o in struct.unpack_from('<%di' % (size // 4), self.data, off)]
        seen = set()
        while stack:
            t = stack.pop()
            if t in seen: continue
            seen.add(t)
            k = self.kind(t)
            if k in (K_PTR, K_SLICE, 17): stack.append(self.elem(t))
            elif k == K_MAP: stack += [self.elem(t), self.elem(t, 56)]
            elif k == K_STRUCT: stack += [ft for _, _, ft in self.fields(t)]
            yield t


def short(pkg):
    """k8s.io/api/apps/v1 -> apps/v1; meta/v1 for apimachinery's."""
    return 'meta/v1' if pkg == META else pkg[len('k8s.io/api/'):]


def included(pkg):
    """meta/v1 and the GA groups of k8s.io/api, less those never sent as a request body."""
    m = re.fullmatch(r'k8s\.io/api/([a-z]+)/v\d+', pkg)
    return pkg == META or (m is not None and m.group(1) not in ('admission', 'apidiscovery', 'imagepolicy'))


class Generator:
    def __init__(self, binary):
        self.bin = binary
        self.structs = {}
        for t in binary.all_types():
            if binary.kind(t) == K_STRUCT and binary.u8(t + 20) & 1:
                pkg = binary.struct_pkg(t)
                if included(pkg):
                    self.structs[short(pkg) + '.' + binary.type_name(t).split('.')[-1]] = t

    def value_type(self, t, where):
        """The table type of a value of Go type t (no pointer, no repetition)."""
        b, k = self.bin, self.bin.kind(t)
        if k in SCALAR: return SCALAR[k]
        if k == K_SLICE and b.kind(b.elem(t)) == K_UINT8: return 'y'
        if k == K_STRUCT:
            pkg, name = b.struct_pkg(t), b.type_name(t).split('.')[-1]
            if (pkg, name) in SPECIAL: return SPECIAL[(pkg, name)]
            if included(pkg): return '@' + short(pkg) + '.' + name
        if k == K_MAP and b.kind(b.elem(t)) == K_STRING_KEY:
            v = b.elem(t, 56)
            if b.kind(v) == K_SLICE and b.kind(b.elem(v)) == 24: return '{[s'  # ExtraValue
            return '{' + self.value_type(v, where)
        raise ValueError(f'{where}: unsupported Go type {b.type_name(t)} (kind {k})')

    def field(self, key, go_name, tag, t):
        tags = dict(re.findall(r'(\w+):"([^"]*)"', tag))
        pb = tags.get('protobuf', '-').split(',')
        if pb == ['-']: return None
        number, repeated = int(pb[1]), pb[2] == 'rep'
        json_tag = tags.get('json', go_name).split(',')
        json, omitempty = json_tag[0] or go_name, 'omitempty' in json_tag[1:]
        inline = 'inline' in json_tag[1:]
        pointer = self.bin.kind(t) == K_PTR
        if pointer: t = self.bin.elem(t)
        if self.bin.kind(t) == K_SLICE and self.bin.kind(self.bin.elem(t)) != K_UINT8:
            repeated, t = True, self.bin.elem(t)
        elif self.bin.kind(t) == K_MAP:
            repeated = False
        ty = self.value_type(t, f'{key}.{go_name}')
        # Zero values matter only for scalars: Go writes a struct whether empty or not.
        zero = ty in SCALAR.values() or ty == 'y'
        flags = ('*' if repeated else '') + ('!' if zero and not repeated and (pointer or not omitempty) else '')
        if inline: json, flags = '', flags + '^'
        return number, f'{number}:{json}:{ty}{flags}'

    def message(self, key):
        fields = [self.field(key, *f) for f in self.bin.fields(self.structs[key])]
        return sorted(f for f in fields if f)

    def table(self):
        """Messages reachable from the objects (structs with TypeMeta) of the GA groups."""
        roots = [k for k, t in self.structs.items()
                 if any(n == 'TypeMeta' for n, _, _ in self.bin.fields(t)) and not k.endswith('List')
                 and (not k.startswith('meta/') or k == 'meta/v1.DeleteOptions')]
        out, stack = {}, sorted(roots)
        while stack:
            key = stack.pop()
            if key in out: continue
            out[key] = self.message(key)
            stack += [r for _, f in out[key] for r in re.findall(r'@([\w./]+\.\w+)', f)]
        return out


K_STRING_KEY = 24
FORMAT = '''# One message a line: its key (package.Name), then its fields as number:jsonName:type.
# Types: s string, b bool, i integer, d double, y bytes (base64), @Name a message (of the same
# package unless the name has one), Q Quantity, IS IntOrString, T Time, MT MicroTime,
# D Duration, RE RawExtension, F FieldsV1, {X a map of string to X, [s an array of strings.
# Flags: * repeated, ! a zero value is written (a Go pointer or a field without omitempty),
# ^ inlined (its fields are the parent's; the JSON name is empty).
'''


def check(table, src):
    """Compares numbers and wire types with k8s-pb's prost attributes."""
    wire = {'s': 'string', 'b': 'bool', 'i': 'int', 'd': 'double', 'y': 'bytes'}
    problems = 0
    for key, fields in table.items():
        pkg, name = key.rsplit('.', 1)
        path = os.path.join(src, 'apimachinery/pkg/apis/meta/v1' if pkg == 'meta/v1' else 'api/' + pkg, 'mod.rs')
        text = open(path).read()
        # prost spells acronyms as words (PodIP -> PodIp).
        body = re.search(r'\npub struct (?i:' + name + r') \{(.*?)\n\}', text, re.S)
        if not body:
            print(f'{key}: not in k8s-pb'); problems += 1; continue
        prost = {int(n): a for a, n in re.findall(r'#\[prost\(([^)]*?),?\s*tag = "(\d+)"', body.group(1))}
        for _, f in fields:
            number, json, ty = f.split(':', 2)
            attr = prost.get(int(number), '')
            want = wire.get(ty.rstrip('*!^'), 'map' if ty.startswith('{') else 'message')
            ok = {'int': 'int32' in attr or 'int64' in attr, 'map': 'map' in attr}.get(want, want in attr)
            if not ok:
                print(f'{key} field {f}: k8s-pb has {attr!r}'); problems += 1
    return problems


def main():
    args = sys.argv[1:]
    src = args[args.index('--check') + 1] if '--check' in args else None
    rest = [a for a in args if a not in ('--check', src)]
    if rest:
        kubectl = rest[0]
    else:
        real = subprocess.check_output(['sh', '-c', 'readlink -f "$(command -v kubectl)"'], text=True).strip()
        kubectl = os.path.join(os.path.dirname(real), 'kubectl.1.33')
    table = Generator(Binary(kubectl)).table()
    if src and check(table, src):
        sys.exit('k8s-pb disagrees; table not written')
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, '../crates/keg-apiserver/src/protobuf/schema.txt')
    with open(out, 'w') as f:
        f.write(f'# Generated by scripts/protobuf-schema.py from {os.path.basename(kubectl)}; do not edit.\n')
        f.write(FORMAT)
        for key in sorted(table):
            # A reference within the message's own package is written without the package.
            fields = ' '.join(f for _, f in table[key]).replace('@' + key.split('.')[0] + '.', '@')
            f.write(key + ' ' + fields + '\n')
    print(f'{len(table)} messages, {sum(len(v) for v in table.values())} fields -> {os.path.normpath(out)}')


main()
