#!/usr/bin/env python3
"""Check a transparency-log checkpoint (c2sp.org/tlog-checkpoint, a c2sp.org/signed-note)
independently of the portal: written from the two specifications and RFC 8032, in Python, with
nothing but the standard library (the Ed25519 verification is RFC 8032's reference algorithm).

usage: verify_checkpoint.py NOTE_FILE KEY_NAME PUBLIC_KEY_BASE64 [--cosigner NAME=KEY_BASE64 ...] [--quorum K]
Prints "origin size root" and exits 0 when the note carries a valid Ed25519 signature by that
key; exits 1 (with the reason on stderr) otherwise. With --cosigner (c2sp.org/tlog-cosignature,
the Ed25519 cosignature/v1 type), also prints "cosigned NAME ..." (the cosigners whose
cosignature verifies) and exits 1 when fewer than K (default: all of them) do.
"""
import base64
import hashlib
import re
import sys

# ---------------------------------------------------------------- Ed25519 (RFC 8032, section 5.1.7)

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _add(a, b):
    # extended homogeneous coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z
    e1 = (a[1] - a[0]) * (b[1] - b[0]) % P
    e2 = (a[1] + a[0]) * (b[1] + b[0]) % P
    c = 2 * a[3] * b[3] * D % P
    d = 2 * a[2] * b[2] % P
    e, f, g, h = e2 - e1, d - c, d + c, e2 + e1
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, pt):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, pt)
        pt = _add(pt, pt)
        s >>= 1
    return q


def _equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


_GY = 4 * pow(5, P - 2, P) % P
_GX = _recover_x(_GY, 0)
G = (_GX, _GY, 1, _GX * _GY % P)


def _decompress(b):
    if len(b) != 32:
        return None
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


def ed25519_verify(public, msg, sig):
    if len(public) != 32 or len(sig) != 64:
        return False
    a = _decompress(public)
    r = _decompress(sig[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % L
    return _equal(_mul(s, G), _add(r, _mul(h, a)))


# ---------------------------------------------------------------- signed note and checkpoint


def key_id(name, public):
    return hashlib.sha256(name.encode("utf-8") + b"\n" + b"\x01" + public).digest()[:4]


def verify(note, name, public):
    if re.search("[\x00-\x09\x0b-\x1f]", note):
        raise ValueError("control characters in the note")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise ValueError("not a signed note")
    text = note[: cut + 1]
    good = False
    for line in note[cut + 2 : -1].split("\n"):
        m = re.fullmatch("\u2014 (\\S+) ([A-Za-z0-9+/]+={0,2})", line)
        if m is None:
            raise ValueError("bad signature line: %r" % line)
        blob = base64.b64decode(m.group(2), validate=True)
        if m.group(1) != name or blob[:4] != key_id(name, public):
            continue  # someone else's signature (a witness): ignored
        if not ed25519_verify(public, text.encode("utf-8"), blob[4:]):
            raise ValueError("the signature by %s does not verify" % name)
        good = True
    if not good:
        raise ValueError("no signature by %s" % name)
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not re.fullmatch("0|[1-9][0-9]*", lines[1]):
        raise ValueError("not a checkpoint")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise ValueError("the root is not 32 bytes")
    return lines[0], int(lines[1]), lines[2]


def cosigned_by(note, name, public):
    """The timestamp of a valid cosignature/v1 by (name, public) on the note, or None."""
    cut = note.rfind("\n\n")
    text = note[: cut + 1]
    kid = hashlib.sha256(name.encode("utf-8") + b"\n" + b"\x04" + public).digest()[:4]
    for line in note[cut + 2 : -1].split("\n"):
        m = re.fullmatch("\u2014 (\\S+) ([A-Za-z0-9+/]+={0,2})", line)
        if m is None or m.group(1) != name:
            continue
        blob = base64.b64decode(m.group(2), validate=True)
        if len(blob) != 4 + 8 + 64 or blob[:4] != kid:
            continue
        timestamp = int.from_bytes(blob[4:12], "big")
        if timestamp >= 2**63:
            continue
        message = ("cosignature/v1\ntime %d\n" % timestamp).encode("ascii") + text.encode("utf-8")
        if ed25519_verify(public, message, blob[12:]):
            return timestamp
    return None


def main():
    args = sys.argv[1:]
    cosigners = []
    quorum = None
    while len(args) > 3:
        if args[-2] == "--quorum":
            quorum = int(args[-1])
        elif args[-2] == "--cosigner":
            name, _, key = args[-1].partition("=")
            cosigners.insert(0, (name, base64.b64decode(key, validate=True)))
        else:
            break
        args = args[:-2]
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0], "r", encoding="utf-8", newline="") as f:
        note = f.read()
    try:
        origin, size, root = verify(note, args[1], base64.b64decode(args[2], validate=True))
    except ValueError as e:
        print("invalid: %s" % e, file=sys.stderr)
        return 1
    print(origin, size, root)
    if cosigners:
        good = [name for (name, public) in cosigners if cosigned_by(note, name, public) is not None]
        print("cosigned", " ".join(good))
        need = len(cosigners) if quorum is None else quorum
        if len(good) < need:
            print("invalid: cosigned by %d of the cosigners, fewer than %d" % (len(good), need), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
