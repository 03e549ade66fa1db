import { useCallback, useState } from "react";

export type Theme = "light" | "dark";
const KEY = "camstream.theme";

function current(): Theme {
  return document.documentElement.classList.contains("dark") ? "dark" : "light";
}

/** The theme, kept in localStorage and applied as the `dark` class on `<html>`. */
export function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(current);
  const toggle = useCallback(() => {
    const next: Theme = current() === "dark" ? "light" : "dark";
    document.documentElement.classList.toggle("dark", next === "dark");
    localStorage.setItem(KEY, next);
    setTheme(next);
  }, []);
  return [theme, toggle];
}
