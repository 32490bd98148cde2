/**
 * GET /claim and GET /invite: the pages a phone's camera opens from a device label's QR code
 * (https://<portal>/claim#code=..&fp=..&m=..) or an invitation's (https://<portal>/invite#code=..&fp=..).
 * The secret is in the URI's fragment, which the browser never sends: each page is static, the
 * same for every device, runs no script, and says how to go on. The portal never sees the secret.
 */
function page(title: string, heading: string, intro: string, action: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
</head>
<body>
<h1>${heading}</h1>
<p>${intro}</p>
<p>${action}, copy this page's whole address (with the part after <code>#</code>)
and run, on the computer that holds your Mesh profile:</p>
<pre>mesh device claim 'THIS ADDRESS'</pre>
<p>or open the address with your Mesh owner app.</p>
</body>
</html>
`;
}

export const CLAIM_PAGE = page(
  'Claim a Mathematical Mesh device',
  'Claim this device',
  `You scanned the label of a device that the Mathematical Mesh configures. The claim code is in
the part of this page's address after <code>#</code>, which your browser keeps to itself: this
portal has not received it.`,
  'To make the device yours',
);

export const INVITE_PAGE = page(
  'An invitation to a Mathematical Mesh device',
  'You are invited',
  `An owner of a device that the Mathematical Mesh configures invited you to share it. The
invitation's secret is in the part of this page's address after <code>#</code>, which your browser
keeps to itself: this portal has not received it. It works once, and only for a short time.`,
  'To accept',
);

const html = (body: string) => async (): Promise<{ status: number; type: string; body: string }> => ({ status: 200, type: 'text/html; charset=utf-8', body });

export const claimPage = html(CLAIM_PAGE);
export const invitePage = html(INVITE_PAGE);
