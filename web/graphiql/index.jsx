// GraphiQL for LedgerMQ (GET /graphiql): posts to /graphql on the same origin with the user's
// bearer token. Bundled by build.mjs into one self-contained HTML page (docs/ARCHITECTURE.md).
//
// The token: `?token=` in the URL (then removed from the address bar and the history entry), or
// the field at the top of the page; kept in sessionStorage (this tab only, gone when it closes),
// never in localStorage. Without one, requests carry no Authorization header, which the server
// accepts only with `[data] graphql_auth = false` from a loopback address (docs/PROTOCOL.md).
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { StrictMode, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';

import './ledgermq.css';

const TOKEN_KEY = 'ledgermq.graphiql.token';
const DEFAULT_QUERY = `# LedgerMQ over GraphQL: read-only, one root field per model
# (docs/PROTOCOL.md "Objects over GraphQL"). Press the run button or Ctrl-Enter.
{
  __schema {
    queryType {
      fields {
        name
      }
    }
  }
}
`;

function readStoredToken() {
    try {
        return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch {
        return ''; // storage disabled: the token lives in the page only
    }
}

function storeToken(token) {
    try {
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
        else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
        /* storage disabled */
    }
}

// Takes `token` and `query` from the URL once; the token leaves the address bar at once so it
// is not in the history, a bookmark or a shared screenshot.
function takeUrlParams() {
    const url = new URL(window.location.href);
    const token = url.searchParams.get('token');
    const query = url.searchParams.get('query');
    if (token !== null) {
        storeToken(token.trim());
        url.searchParams.delete('token');
        window.history.replaceState(null, '', url.pathname + url.search + url.hash);
    }
    return { query: query === null ? undefined : query };
}

function makeFetcher(token) {
    return async (params, opts) => {
        const headers = {
            'Content-Type': 'application/json',
            Accept: 'application/json',
            ...((opts && opts.headers) || {}),
        };
        if (token) headers.Authorization = `Bearer ${token}`;
        const resp = await fetch('/graphql', {
            method: 'POST',
            headers,
            body: JSON.stringify(params),
            credentials: 'omit',
            cache: 'no-store',
        });
        const text = await resp.text();
        try {
            return JSON.parse(text);
        } catch {
            return { errors: [{ message: `HTTP ${resp.status}: ${text.slice(0, 500)}` }] };
        }
    };
}

function TokenBar({ token, onChange }) {
    const [draft, setDraft] = useState(token);
    const submit = (e) => {
        e.preventDefault();
        onChange(draft.trim());
    };
    return (
        <form className="lmq-bar" onSubmit={submit}>
            <span className="lmq-title">LedgerMQ GraphiQL</span>
            <label htmlFor="lmq-token">Token</label>
            <input
                id="lmq-token"
                type="password"
                autoComplete="off"
                spellCheck="false"
                placeholder="ledgermq token --key you.json (empty: graphql_auth = false, loopback)"
                value={draft}
                onChange={(e) => setDraft(e.target.value)}
            />
            <button type="submit" id="lmq-token-use">
                Use
            </button>
            <button
                type="button"
                id="lmq-token-forget"
                onClick={() => {
                    setDraft('');
                    onChange('');
                }}
            >
                Forget
            </button>
            <span className="lmq-state" id="lmq-token-state">
                {token ? 'token set (this tab only)' : 'no token'}
            </span>
        </form>
    );
}

function App({ initialQuery }) {
    const [token, setToken] = useState(readStoredToken);
    const fetcher = useMemo(() => makeFetcher(token), [token]);
    const change = (t) => {
        storeToken(t);
        setToken(t);
    };
    return (
        <div className="lmq-root">
            <TokenBar token={token} onChange={change} />
            <div className="lmq-graphiql">
                <GraphiQL
                    fetcher={fetcher}
                    query={initialQuery}
                    defaultQuery={DEFAULT_QUERY}
                    shouldPersistHeaders={false}
                    isHeadersEditorEnabled={false}
                />
            </div>
        </div>
    );
}

const { query } = takeUrlParams();
createRoot(document.getElementById('root')).render(
    <StrictMode>
        <App initialQuery={query} />
    </StrictMode>,
);
