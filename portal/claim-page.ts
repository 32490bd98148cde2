/**
 * GET /claim and GET /invite: the pages a phone's camera opens from a device label's QR code
 * (https://<portal>/claim#code=..&fp=..&m=..). The claim code is in the URI's fragment, which
 * the browser never sends: this page is static, the same for every device, runs no script, and
 * says how to claim. The portal never sees the code.
 */
export const CLAIM_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Claim a Mathematical Mesh device</title>
</head>
<body>
<h1>Claim this device</h1>
<p>You scanned the label of a device that the Mathematical Mesh configures. The claim code is in
the part of this page's address after <code>#</code>, which your browser keeps to itself: this
portal has not received it.</p>
<p>To make the device yours, copy this page's whole address (with the part after <code>#</code>)
and run, on the computer that holds your Mesh profile:</p>
<pre>mesh device claim 'THIS ADDRESS'</pre>
<p>or open the address with your Mesh owner app.</p>
</body>
</html>
`;

export async function claimPage(): Promise<{ status: number; type: string; body: string }> {
  return { status: 200, type: 'text/html; charset=utf-8', body: CLAIM_PAGE };
}

/** GET /invite: the page an invitation's QR code opens (https://<portal>/invite#code=..&fp=..); the secret stays in the fragment. */
export const INVITE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>An invitation to a Mathematical Mesh device</title>
</head>
<body>
<h1>You are invited</h1>
<p>An owner of a device that the Mathematical Mesh configures invited you to share it. The
invitation's secret is in the part of this page's address after <code>#</code>, which your browser
keeps to itself: this portal has not received it. It works once, and only for a short time.</p>
<p>To accept, copy this page's whole address (with the part after <code>#</code>) and run, on the
computer that holds your Mesh profile:</p>
<pre>mesh device claim 'THIS ADDRESS'</pre>
<p>or open the address with your Mesh owner app.</p>
</body>
</html>
`;

export async function invitePage(): Promise<{ status: number; type: string; body: string }> {
  return { status: 200, type: 'text/html; charset=utf-8', body: INVITE_PAGE };
}
