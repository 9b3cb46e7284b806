
53

10.0.0.1»" spiffe://cluster.local/ns/a/sa/b